"""The shipped system presets (arch_configs/*.yaml).

Expected numbers are written out by hand from the published figures (vendor datasheets / docs as
recorded in shared/data/specs.yaml), not computed by calling the code a second time.
"""

from __future__ import annotations

from typing import Any, Iterator

import pytest

from accelsim.arch import list_presets, load_system
from accelsim.arch.presets import load_raw
from accelsim.units import parse

GiB = 2**30
UNIT_KINDS = ("bytes", "bandwidth", "frequency", "time", "power", "energy", "flops", "area")

SINGLE_CHIPS = ["trn1", "inf2", "trn2", "tpu-v4", "tpu-v5e", "tpu-v5p", "a100-sxm-80gb",
                "h100-sxm-80gb", "h200-sxm-141gb", "h100-gt-96gb", "mi300x", "edge-npu"]
SYSTEMS = ["a100x4-nvlink", "dgx-a100", "dgx-h100", "dgx-h200", "grand-teton-h100", "mi300x-8", "trn1-32xl",
           "trn2-48xl", "inf2-48xl", "tpu-v4-64", "tpu-v5e-256", "tpu-v5p-512"]
REQUIRED = SINGLE_CHIPS + SYSTEMS
ALL = list_presets()


# --------------------------------------------------------------------------------------------
# Every preset loads; the required ones are all there.

def test_required_presets_are_shipped():
    missing = sorted(set(REQUIRED) - set(ALL))
    assert not missing, f"missing presets: {missing}"


@pytest.mark.parametrize("name", ALL)
def test_preset_loads(name):
    spec = load_system(name)
    assert spec.name == name
    assert spec.description, "every preset says what it is"


@pytest.mark.parametrize("name", SINGLE_CHIPS)
def test_single_chip_presets_have_no_network(name):
    spec = load_system(name)
    assert spec.num_chips == 1
    assert spec.interconnect is None


# --------------------------------------------------------------------------------------------
# Every number has a source.

def _is_numeric(value: Any) -> bool:
    """A number, or a string with a unit that accelsim.units understands ("24 MiB", "1.4 GHz")."""
    if isinstance(value, bool):
        return False
    if isinstance(value, (int, float)):
        return True
    if isinstance(value, str):
        for kind in UNIT_KINDS:
            try:
                parse(value, kind)
                return True
            except ValueError:
                pass
    return False


def _walk(node: Any, path: tuple[str, ...] = ()) -> Iterator[tuple[tuple[str, ...], Any]]:
    """Every (path, value) of a mapping, containers included; list items get their index."""
    if path:
        yield path, node
    if isinstance(node, dict):
        for k, v in node.items():
            yield from _walk(v, path + (str(k),))
    elif isinstance(node, list):
        for i, v in enumerate(node):
            yield from _walk(v, path + (str(i),))


def _covered(path: tuple[str, ...], keys: list[tuple[str, ...]]) -> bool:
    return any(path[:len(k)] == k for k in keys)


@pytest.mark.parametrize("name", ALL)
def test_every_numeric_leaf_has_a_source(name):
    data, _ = load_raw(name)
    sources = data.get("sources") or {}
    keys = [tuple(k.split(".")) for k in sources]
    body = {k: v for k, v in data.items() if k != "sources"}
    leaves = [p for p, v in _walk(body) if not isinstance(v, (dict, list)) and _is_numeric(v)]
    assert leaves, "a preset without numbers?"
    unsourced = [".".join(p) for p in leaves if not _covered(p, keys)]
    assert not unsourced, f"{name}: numbers without a `sources` entry: {unsourced}"


@pytest.mark.parametrize("name", ALL)
def test_sources_name_real_fields_and_say_something(name):
    data, _ = load_raw(name)
    body = {k: v for k, v in data.items() if k != "sources"}
    paths = {p for p, _ in _walk(body)}
    for key, text in (data.get("sources") or {}).items():
        assert tuple(key.split(".")) in paths, f"{name}: sources key {key!r} names no field of the file"
        assert key not in ("chip", "interconnect"), f"{name}: sources key {key!r} is too broad"
        assert isinstance(text, str) and len(text) > 10, f"{name}: sources[{key!r}] says nothing"


# --------------------------------------------------------------------------------------------
# Peak compute: the mechanism (macs x cores x clock) reproduces the published dense peaks.

# (preset, dtype, expected FLOP/s, relative tolerance, where the number comes from)
PEAKS = [
    # Trainium1 / Inferentia2: 2 cores x 128x128 x 2 x 2.8 GHz = 183.5e12. AWS publishes 190
    # TFLOPS per chip (210 in 2022 docs); the per-core figure (92 TFLOPS) implies 184.
    ("trn1", "bf16", 183.5008e12, 1e-3, "2*16384*2*2.8e9; published 190 T"),
    ("inf2", "bf16", 183.5008e12, 1e-3, "2*16384*2*2.8e9; published 190 T"),
    ("trn1", "fp32", 45.8752e12, 1e-3, "1/4 rate; NKI 23 T per core"),
    # Trainium2: 8 cores x 79 T = 629 T per the per-core mechanism; the chip page says 667.
    ("trn2", "bf16", 629.1456e12, 1e-3, "2*16384*8*2.4e9; published 667 T"),
    ("trn2", "fp8", 1258.2912e12, 1e-3, "8 x 158 T per core; published 1299 T"),
    ("tpu-v4", "bf16", 275e12, 0.01, "Cloud TPU v4: 275 TFLOPS"),
    ("tpu-v5e", "bf16", 197e12, 0.01, "Cloud TPU v5e: 197 TFLOPS"),
    ("tpu-v5e", "int8", 393e12, 0.01, "Cloud TPU v5e: 393 TOPS"),
    ("tpu-v5p", "bf16", 459e12, 0.01, "Cloud TPU v5p: 459 TFLOPS"),
    ("tpu-v5p", "int8", 918e12, 0.01, "scaling book / JAX: 918 TOPS"),
    ("a100-sxm-80gb", "bf16", 312e12, 0.01, "A100 datasheet: 312 TFLOPS"),
    ("a100-sxm-80gb", "fp16", 312e12, 0.01, "A100 datasheet: 312 TFLOPS"),
    ("a100-sxm-80gb", "tf32", 156e12, 0.01, "A100 datasheet: 156 TFLOPS"),
    ("a100-sxm-80gb", "int8", 624e12, 0.01, "A100 datasheet: 624 TOPS"),
    ("a100-sxm-80gb", "int4", 1248e12, 0.01, "A100 whitepaper: 1248 TOPS"),
    ("a100-sxm-80gb", "fp32", 19.5e12, 0.01, "A100 datasheet: 19.5 TFLOPS (CUDA cores)"),
    ("h100-sxm-80gb", "bf16", 989.4e12, 0.01, "H100 SXM datasheet: 989.4 TFLOPS dense"),
    ("h100-sxm-80gb", "tf32", 494.7e12, 0.01, "H100 SXM: 494.7 TFLOPS dense (989 is sparse)"),
    ("h100-sxm-80gb", "fp8", 1978.9e12, 0.01, "H100 SXM datasheet: 1978.9 TFLOPS dense"),
    ("h100-sxm-80gb", "int8", 1978.9e12, 0.01, "H100 SXM datasheet: 1978.9 TOPS dense"),
    ("h200-sxm-141gb", "bf16", 989.4e12, 0.01, "H200: same GH100 peaks as H100 SXM"),
    ("h200-sxm-141gb", "fp8", 1978.9e12, 0.01, "H200: 3958 TFLOPS sparse / 2"),
    ("mi300x", "bf16", 1307.4e12, 0.01, "ROCm MI300X table: 1307.4 TFLOPS"),
    ("mi300x", "tf32", 653.7e12, 0.01, "ROCm MI300X table: 653.7 TFLOPS"),
    ("mi300x", "fp8", 2614.9e12, 0.01, "ROCm MI300X table: 2614.9 TFLOPS"),
    ("mi300x", "fp32", 163.4e12, 0.01, "ROCm MI300X table: matrix FP32 163.4 TFLOPS"),
    ("edge-npu", "int8", 2.048e12, 1e-9, "illustrative: 32*32*2*1e9"),
]


@pytest.mark.parametrize("name,dtype,expected,rel,why", PEAKS, ids=[f"{p[0]}-{p[1]}" for p in PEAKS])
def test_dense_peak_matches_published(name, dtype, expected, rel, why):
    assert load_system(name).chip.peak_flops(dtype) == pytest.approx(expected, rel=rel), why


@pytest.mark.parametrize("name,expected", [
    ("a100-sxm-80gb", 624e12),    # A100 datasheet: BF16 624 TFLOPS with 2:4 sparsity
    ("h100-sxm-80gb", 1978.9e12),  # H100 SXM datasheet: BF16 1979 TFLOPS* with sparsity
    ("mi300x", 2614.9e12),        # hipSPARSELt: 2:4 doubles the dense 1307.4
])
def test_sparse_peak(name, expected):
    assert load_system(name).chip.peak_flops("bf16", sparse=True) == pytest.approx(expected, rel=0.01)


@pytest.mark.parametrize("name", ["trn1", "tpu-v4", "tpu-v5e", "tpu-v5p"])
def test_no_structured_sparsity_where_none_is_published(name):
    assert load_system(name).chip.core.tensor.sparsity_speedup == 1.0


@pytest.mark.parametrize("name,expected", [
    ("a100-sxm-80gb", 19.5e12),  # A100 datasheet FP32 19.5 TFLOPS = 108 SMs x 64 FMA x 2 x 1.41 GHz
    ("h100-sxm-80gb", 66.9e12),  # H100 SXM FP32 66.9 TFLOPS = 132 x 128 FMA x 2 x 1.98 GHz
    ("mi300x", 163.4e12),        # ROCm: vector FP32 163.4 TFLOPS = 304 x 128 FMA x 2 x 2.1 GHz
])
def test_gpu_vector_fp32_peak(name, expected):
    # an FMA is one elementwise op and two FLOPs
    assert 2 * load_system(name).chip.vector_ops_per_s("fp32") == pytest.approx(expected, rel=0.01)


@pytest.mark.parametrize("name,clock", [
    ("a100-sxm-80gb", 1.41e9), ("h100-sxm-80gb", 1.83e9), ("h200-sxm-141gb", 1.83e9),
    ("mi300x", 2.1e9), ("trn1", 2.8e9), ("inf2", 2.8e9), ("trn2", 2.4e9),
    ("tpu-v4", 1.05e9), ("tpu-v5e", 1.5e9), ("tpu-v5p", 1.75e9),
])
def test_tensor_clock(name, clock):
    assert load_system(name).chip.engine_hz("tensor") == pytest.approx(clock, rel=1e-12)


@pytest.mark.parametrize("name", SINGLE_CHIPS)
def test_array_shape_is_the_one_pass_16bit_rate(name):
    # rows*cols*count is the one-pass rate; the 16-bit rate runs at exactly one pass
    t = load_system(name).chip.core.tensor
    rate = t.macs_per_cycle.get("bf16", t.macs_per_cycle.get("fp16"))
    assert t.rows * t.cols * t.count == rate


@pytest.mark.parametrize("name,cores,rows,cols,count,dataflow", [
    ("a100-sxm-80gb", 108, 16, 16, 4, "os"),   # 4 TCs x 256 FP16 FMA/clk per SM
    ("h100-sxm-80gb", 132, 16, 32, 4, "os"),   # 4 TCs x 512 FP16 FMA/clk per SM
    ("h200-sxm-141gb", 132, 16, 32, 4, "os"),
    ("mi300x", 304, 16, 16, 4, "os"),          # 2048 FP16 FLOP/clk/CU = 1024 MAC
    ("tpu-v4", 2, 128, 128, 4, "ws"),          # 2 TensorCores x 4 MXU 128x128
    ("tpu-v5e", 1, 128, 128, 4, "ws"),
    ("tpu-v5p", 2, 128, 128, 4, "ws"),
    ("trn1", 2, 128, 128, 1, "ws"),            # 2 NeuronCore-v2, one 128x128 TensorE each
    ("inf2", 2, 128, 128, 1, "ws"),
])
def test_core_structure(name, cores, rows, cols, count, dataflow):
    c = load_system(name).chip
    t = c.core.tensor
    assert (c.num_cores, t.rows, t.cols, t.count, t.dataflow) == (cores, rows, cols, count, dataflow)


@pytest.mark.parametrize("name", ["a100-sxm-80gb", "h100-sxm-80gb", "h200-sxm-141gb"])
def test_nvidia_sm_has_16_sfu_results_per_clock(name):
    # CUDA programming guide throughput table: 16 transcendental results / clock / SM
    assert load_system(name).chip.core.scalar.transcendentals_per_cycle == 16


# --------------------------------------------------------------------------------------------
# Memory: exact published capacities and bandwidths.

# (preset, HBM bytes, HBM bytes/s, where from)
HBM = [
    ("trn1", 32 * GiB, 820e9, "NKI guide: 32 GiB, 820 GB/s"),
    ("inf2", 32 * GiB, 820e9, "NKI guide: 32 GiB, 820 GB/s"),
    ("trn2", 96 * GiB, 2.9e12, "Trainium2 page: 96 GiB, 2.9 TB/s"),
    ("tpu-v4", 32 * GiB, 1.2e12, "Cloud TPU v4: 32 GiB, 1200 GB/s"),
    ("tpu-v5e", 16 * GiB, 819e9, "Cloud TPU v5e: 16 GB (= 16 GiB per JAX), 819 GBps"),
    ("tpu-v5p", 95 * GiB, 2.765e12, "Cloud TPU v5p: 95 GiB, 2765 GBps"),
    ("a100-sxm-80gb", 80 * GiB, 2.039e12, "A100 datasheet: 80GB, 2,039 GB/s"),
    ("h100-sxm-80gb", 80 * GiB, 3.35e12, "H100 SXM datasheet: 80GB, 3.35 TB/s"),
    ("h200-sxm-141gb", 141 * GiB, 4.8e12, "H200 product page: 141GB, 4.8 TB/s"),
    ("h100-gt-96gb", 96 * GiB, 2.4e12, "torchtitan docs/performance.md: 96GB HBM2e, 2.4 TB/sec"),
    ("mi300x", 192 * GiB, 5.3e12, "ROCm: 192 GiB, 5.3 TB/s"),
    ("edge-npu", 8 * GiB, 51.2e9, "illustrative: LPDDR5-6400 x64"),
]


@pytest.mark.parametrize("name,capacity,bandwidth,why", HBM, ids=[h[0] for h in HBM])
def test_hbm_capacity_and_bandwidth(name, capacity, bandwidth, why):
    hbm = load_system(name).chip.hbm
    assert hbm.capacity_bytes == capacity, why
    assert hbm.bandwidth_Bps == pytest.approx(bandwidth, rel=1e-12), why


@pytest.mark.parametrize("name,core_sram,shared_sram", [
    ("trn1", 24 * 2**20, None),               # SBUF 24 MiB per core
    ("trn2", 28 * 2**20, None),               # SBUF 28 MiB per core
    ("tpu-v4", 16 * 2**20, 128 * 2**20),      # VMEM 16 MiB per TC, CMEM ~128 MiB per chip
    ("tpu-v5e", 128 * 2**20, None),           # VMEM 128 MiB
    ("tpu-v5p", 64 * 2**20, None),            # VMEM 64 MiB per TC
    ("a100-sxm-80gb", 164 * 2**10, 40 * 2**20),   # 164 KB smem carve-out, 40 MiB L2
    ("h100-sxm-80gb", 228 * 2**10, 50 * 2**20),   # 228 KB smem carve-out, 50 MiB L2
    ("mi300x", 64 * 2**10, 256 * 2**20),      # 64 KiB LDS, 256 MiB Infinity Cache
])
def test_on_chip_sram(name, core_sram, shared_sram):
    c = load_system(name).chip
    assert c.core.sram.capacity_bytes == core_sram
    if shared_sram is None:
        assert c.shared_sram is None
    else:
        assert c.shared_sram.capacity_bytes == shared_sram


@pytest.mark.parametrize("name", ALL)
def test_dma_never_limits_below_hbm(name):
    c = load_system(name).chip
    assert c.dma_bandwidth_Bps >= c.hbm.bandwidth_Bps * (1 - 1e-9)


# --------------------------------------------------------------------------------------------
# Systems: chip counts, topologies, link bandwidths.

# (preset, chip preset, num_chips, kind, dims, per-chip injection bandwidth per direction, SHARP)
SYSTEM_TABLE = [
    ("a100x4-nvlink", "a100-sxm-80gb", 4, "fully_connected", (), 300e9, False),  # 12 x 25 GB/s
    ("dgx-a100", "a100-sxm-80gb", 8, "switch", (), 300e9, False),      # 12 x 25 GB/s (600 bidi)
    ("dgx-h100", "h100-sxm-80gb", 8, "switch", (), 450e9, True),       # 18 x 25 GB/s (900 bidi)
    ("dgx-h200", "h200-sxm-141gb", 8, "switch", (), 450e9, True),
    ("mi300x-8", "mi300x", 8, "fully_connected", (), 448e9, False),     # 7 x 64 GB/s (896 bidi)
    ("trn1-32xl", "trn1", 16, "torus2d", (4, 4), 384 * GiB, False),    # 384 GiB/s per device
    ("trn2-48xl", "trn2", 16, "torus2d", (4, 4), 1024e9, False),       # 1024 GB/s intra-instance
    ("inf2-48xl", "inf2", 12, "ring", (12,), 192 * GiB, False),        # 192 GiB/s per chip
    ("tpu-v4-64", "tpu-v4", 64, "torus3d", (4, 4, 4), 270e9, False),   # 6 x 45 GB/s
    ("tpu-v5e-256", "tpu-v5e", 256, "torus2d", (16, 16), 200e9, False),  # 4 x 50 GB/s
    ("tpu-v5p-512", "tpu-v5p", 512, "torus3d", (8, 8, 8), 600e9, False),  # 6 x 100 GB/s
]


@pytest.mark.parametrize("name,base,n,kind,dims,chip_bw,sharp", SYSTEM_TABLE, ids=[s[0] for s in SYSTEM_TABLE])
def test_system_topology(name, base, n, kind, dims, chip_bw, sharp):
    spec = load_system(name)
    ic = spec.interconnect
    assert spec.num_chips == n
    assert ic.kind == kind
    assert tuple(ic.dims) == dims
    assert ic.in_switch_reduction is sharp
    assert ic.chip_bandwidth_Bps(n) == pytest.approx(chip_bw, rel=1e-9)
    assert spec.chip == load_system(base).chip, "a system reuses its chip preset unchanged"


def test_link_counts_and_per_link_bandwidth():
    a4 = load_system("a100x4-nvlink").interconnect
    assert (a4.links_per_neighbour, a4.link_bandwidth_Bps) == (4, 25e9)      # 12 links / 3 peers
    assert a4.link_latency_s == pytest.approx(8.92e-6)                        # LLMCompass GA100
    assert load_system("dgx-a100").interconnect.links_per_neighbour == 12    # NVLink3
    assert load_system("dgx-h100").interconnect.links_per_neighbour == 18    # NVLink4
    assert load_system("dgx-h200").interconnect.links_per_neighbour == 18
    assert load_system("mi300x-8").interconnect.link_bandwidth_Bps == 64e9    # x16 IF, one way
    assert load_system("tpu-v4-64").interconnect.link_bandwidth_Bps == 45e9   # scaling book
    assert load_system("tpu-v5e-256").interconnect.link_bandwidth_Bps == 50e9
    assert load_system("trn2-48xl").interconnect.link_bandwidth_Bps == 256e9  # estimated


def test_dgx_h100_totals():
    spec = load_system("dgx-h100")
    assert spec.total_hbm_bytes == 8 * 80 * GiB          # DGX H100: 640 GB of HBM3
    assert spec.total_hbm_bandwidth_Bps == pytest.approx(8 * 3.35e12)
    assert spec.peak_flops("bf16") == pytest.approx(8 * 989.4e12, rel=0.01)


def test_system_sources_include_the_chip_sources():
    data, _ = load_raw("dgx-h100")
    base, _ = load_raw("h100-sxm-80gb")
    for key, text in base["sources"].items():
        if key.startswith("chip"):
            assert data["sources"][key] == text
    assert "interconnect.links_per_neighbour" in data["sources"]


def test_edge_npu_is_marked_illustrative():
    spec = load_system("edge-npu")
    assert "ILLUSTRATIVE" in spec.description
    assert "not a real product" in spec.description
    assert all("illustrative" in s.lower() or "derived" in s.lower() for s in spec.sources.values())


def test_grand_teton_h100_peak_lies_between_h100_sxm_and_nvl():
    """TorchTitan paper (arXiv 2410.06511): the 500 W Grand Teton H100's peak "should be between
    SXM and NVL": H100 SXM 989.4 TFLOPS BF16 dense, H100 NVL 1,671 sparse = 835.5 dense (NVIDIA
    H100 datasheet); the preset sits at their geometric mean, its FP8 peak twice that."""
    gt = load_system("h100-gt-96gb").chip
    bf16 = gt.peak_flops("bf16")
    assert 835.5e12 < bf16 < 989.4e12
    assert bf16 == pytest.approx((835.5e12 * 989.4e12) ** 0.5, rel=0.002)
    assert gt.peak_flops("fp8") == pytest.approx(2 * bf16, rel=1e-9)
    assert gt.die == "h100-sxm5-80gb" and gt.tdp_W == 500
    board = load_system("grand-teton-h100")
    assert board.num_chips == 8 and board.scale_out.nic_bandwidth_Bps == pytest.approx(400e9 / 8)


def test_a_chip_on_another_chips_die_takes_its_attention_efficiency():
    """A stack's attention efficiency is keyed by chip; a chip on the H100's die (H200, Grand
    Teton H100) without its own entry runs the H100's kernels at the H100's fraction."""
    from accelsim.stack.presets import load_stack
    from accelsim.stack.realize import realize

    st = load_stack("torchtitan-cuda")
    assert "h100-gt-96gb-500w" not in st.attention.efficiency
    gt = realize(load_system("grand-teton-h100"), st).chip.calibration
    h100 = realize(load_system("dgx-h100"), st).chip.calibration
    assert gt.attention_efficiency == h100.attention_efficiency == st.attention.efficiency["h100-sxm5-80gb"]


# --------------------------------------------------------------------------------------------
# A shipped preset named in every call is read once, and again only when a file changes.

def _copy_presets(tmp_path, monkeypatch):
    """The trn1 and trn1-32xl presets and the priors in a folder of their own, which the loader
    takes for the shipped one."""
    import shutil

    from accelsim.arch import presets

    src = presets.preset_dir()
    (tmp_path / "priors").mkdir()
    for name in ("trn1.yaml", "trn1-32xl.yaml", presets.PRIORS):
        shutil.copy(src / name, tmp_path / name)
    monkeypatch.setattr(presets, "preset_dir", lambda: tmp_path)
    return tmp_path


def _rewrite(path, old: str, new: str) -> None:
    """Replace ``old`` in the file and move its modification time a second on, so no file system
    clock granularity can hide the change."""
    import os

    text = path.read_text()
    assert old in text
    st = os.stat(path)
    path.write_text(text.replace(old, new))
    os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns + 10**9))


def test_a_preset_named_again_is_the_same_object_until_its_file_changes(tmp_path, monkeypatch):
    folder = _copy_presets(tmp_path, monkeypatch)
    first = load_system("trn1-32xl")
    assert load_system("trn1-32xl") is first  # the chip model and op costs kept for it apply
    other = load_system("trn1-32xl", ["chip.hbm.bandwidth_Bps=1 TB/s"])
    assert other is not first and other.chip.hbm.bandwidth_Bps == 1e12 != first.chip.hbm.bandwidth_Bps
    assert load_system("trn1-32xl", ["chip.hbm.bandwidth_Bps=1 TB/s"]) is other
    # the system file, the chip preset it names and the priors are each watched
    _rewrite(folder / "trn1-32xl.yaml", "description:", "description: edited;")
    edited = load_system("trn1-32xl")
    assert edited is not first and edited.description.startswith("edited;")
    _rewrite(folder / "trn1.yaml", "frequency_Hz: 2.8 GHz", "frequency_Hz: 1.4 GHz")
    slower = load_system("trn1-32xl")
    assert slower.chip.frequency_Hz == 1.4e9 and first.chip.frequency_Hz == 2.8e9
    _rewrite(folder / "priors" / "achievable.yaml", "trainium1:\n    achievable:\n",
             "trainium1:\n    achievable:\n      sram_efficiency: 0.5\n")
    assert load_system("trn1-32xl").chip.achievable.sram_efficiency == 0.5


def test_a_path_or_a_calibration_is_read_every_time(tmp_path):
    import shutil

    from accelsim.arch import presets

    path = tmp_path / "mine.yaml"
    shutil.copy(presets.preset_dir() / "trn1.yaml", path)
    assert load_system(path) is not load_system(path)  # a user's file may change between calls


def test_a_model_preset_named_again_is_the_same_object_until_its_file_changes(tmp_path, monkeypatch):
    import shutil

    from accelsim.workload import load_model, loaders

    shutil.copy(loaders.preset_dir() / "tiny.yaml", tmp_path / "tiny.yaml")
    monkeypatch.setattr(loaders, "preset_dir", lambda: tmp_path)
    first = load_model("tiny")
    assert load_model("tiny") is first
    _rewrite(tmp_path / "tiny.yaml", "num_hidden_layers: 2", "num_hidden_layers: 3")
    assert load_model("tiny").num_hidden_layers == 3 and first.num_hidden_layers == 2


def test_overrides_apply_to_a_system_object_too():
    """evaluate(spec, overrides=...) edits the spec it is given (it once dropped them silently
    for a SystemSpec); the edited object is kept per (object, overrides), and a bad value is
    refused naming the field."""
    from accelsim.api import evaluate, evaluate_train, system_with
    from accelsim.errors import ConfigError

    spec = load_system("h100-sxm-80gb")
    slow = ["chip.hbm.bandwidth_Bps=1 TB/s"]
    edited = system_with(spec, slow)
    assert edited.chip.hbm.bandwidth_Bps == 1e12 and spec.chip.hbm.bandwidth_Bps == 3.35e12
    assert system_with(spec, slow) is edited and system_with(spec) is spec
    kw = dict(phase="decode", batch=8, context_len=2048)
    base = evaluate(spec, "llama-3-8b", **kw).summary["latency_s"]
    by_object = evaluate(spec, "llama-3-8b", overrides=slow, **kw).summary["latency_s"]
    assert by_object == evaluate("h100-sxm-80gb", "llama-3-8b", overrides=slow, **kw).summary["latency_s"]
    # a memory-bound decode step at 1 / 3.35 of the bandwidth: well over twice as long
    assert by_object > 2.5 * base
    t = evaluate_train(spec, "tiny", 8, 256, overrides=slow).summary["step_time_s"]
    assert t == evaluate_train("h100-sxm-80gb", "tiny", 8, 256, overrides=slow).summary["step_time_s"]
    with pytest.raises(ConfigError, match="chip.hbm.bandwidth_Bps"):
        system_with(spec, ["chip.hbm.bandwidth_Bps=-1 TB/s"])


def _leaves(d, prefix=""):
    for k, v in d.items():
        if k == "sources":
            continue
        p = f"{prefix}{k}"
        if isinstance(v, dict):
            yield from _leaves(v, p + ".")
        else:
            yield p, v


@pytest.mark.parametrize("name", ["dgx-h100", "trn2-48xl", "tpu-v5e-256", "mi300x", "edge-npu"])
def test_overrides_on_a_cached_preset_give_the_system_a_fresh_load_gives(name):
    """load_system(name, overrides) edits the cached preset (only the models along the changed
    paths validated again); it must give the system validating the preset's mapping with the
    overrides gives, and refuse what that refuses with the same message: every numeric field
    x1.5 and x-1, a few structural edits and typos."""
    from accelsim.arch.spec import SystemSpec
    from accelsim.configio import apply_overrides, validate
    from accelsim.errors import ConfigError

    raw, origin = load_raw(name)
    parsed = load_system(name).model_dump()
    edits = []
    for path, _ in _leaves(raw):  # the preset's own fields, as numbers once parsed ("3.35 TB/s" too)
        v = parsed
        for k in path.split("."):
            v = v.get(k) if isinstance(v, dict) else None
        if isinstance(v, (int, float)) and not isinstance(v, bool):
            edits += [[f"{path}={v * 1.5!r}"], [f"{path}={-v!r}"]]
    assert len(edits) >= 40
    import copy

    before = copy.deepcopy(raw)
    edits += [["chip.hbm.bandwidth_Bps=1 TB/s", "chip.core.sram.capacity_bytes=8 MiB"],
              ["chip.core.tensor.dataflow=os"], ["chip.core.tensr.rows=4"], ["num_chips=3"],
              ["chip.calibration.tensor_efficiency=0.5"], ["chip.hbm=7"], ["chip.hbm.bandwidth_Bps=fast"]]
    for ov in edits:
        try:
            want = validate(SystemSpec, apply_overrides(raw, ov), f"{origin} (with --set {', '.join(ov)})")
        except ConfigError as e:
            with pytest.raises(ConfigError) as got:
                load_system(name, ov)
            assert str(got.value) == str(e), ov
        else:
            assert load_system(name, ov).model_dump() == want.model_dump(), ov
    # overrides copy the mappings along their paths and share the rest: the input is never changed
    assert raw == before and load_system(name).model_dump() == parsed
