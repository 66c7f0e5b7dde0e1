import pytest
from pydantic import BaseModel

from accelsim.units import Bytes, BytesPerSecond, fmt, parse


@pytest.mark.parametrize("text, kind, expected", [
    ("24 MiB", "bytes", 24 * 1024**2),
    ("96 GiB", "bytes", 96 * 1024**3),
    ("96 GB", "bytes", 96e9),
    ("512 KB", "bytes", 512_000),        # K is decimal: write KiB for 1024
    ("512 KiB", "bytes", 524_288),
    ("2.9 TB/s", "bandwidth", 2.9e12),
    ("27 GiB/s", "bandwidth", 27 * 2**30),
    ("800 Gbps", "bandwidth", 100e9),    # lower-case b is a bit
    ("800 Gb/s", "bandwidth", 100e9),
    ("2765 GBps", "bandwidth", 2.765e12),
    ("1.4 GHz", "frequency", 1.4e9),
    ("960 MHz", "frequency", 0.96e9),
    ("500 ns", "time", 500e-9),
    ("8.92 us", "time", 8.92e-6),
    ("2 ms", "time", 2e-3),
    ("700 W", "power", 700.0),
    ("814 mm2", "area", 814e-6),
    ("1e3", "bytes", 1000.0),
    (4096, "bytes", 4096.0),
])
def test_parse(text, kind, expected):
    assert parse(text, kind) == pytest.approx(expected, rel=1e-12)


def test_binary_and_decimal_differ():
    assert parse("1 GiB", "bytes") / parse("1 GB", "bytes") == pytest.approx(1.073741824)
    assert parse("1 TiB/s", "bandwidth") != parse("1 TB/s", "bandwidth")


@pytest.mark.parametrize("text, kind, fragment", [
    ("24 MiQ", "bytes", "unknown unit"),
    ("fast", "bandwidth", "cannot parse"),
    ("2 GHz", "bytes", "unknown unit"),
    ("5 mB", "bytes", "unknown unit"),     # no milli-bytes
    ("nan", "bytes", "cannot parse"),
])
def test_parse_rejects(text, kind, fragment):
    with pytest.raises(ValueError, match=fragment):
        parse(text, kind)


def test_annotated_types_in_a_model():
    class M(BaseModel):
        size_bytes: Bytes
        bw_Bps: BytesPerSecond

    m = M(size_bytes="2 MiB", bw_Bps="1.5 TB/s")
    assert m.size_bytes == 2 * 2**20 and m.bw_Bps == 1.5e12


def test_fmt():
    assert fmt(2.9e12, "B/s") == "2.9 TB/s"
    assert fmt(25165824, "B", binary=True) == "24 MiB"
    assert fmt(1.5e-6, "s") == "1.5 us"
