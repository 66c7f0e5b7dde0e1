"""Shared fixtures: small hand-built systems whose costs can be derived on paper."""

from __future__ import annotations

import copy
from typing import Any

import os

import pytest
from hypothesis import settings

from accelsim.arch.spec import SystemSpec

# Property tests draw the same examples on every run (CI and local alike), so a red run is a
# change, never a draw: "derandomized" (the default) fixes hypothesis' seed and keeps no example
# database. HYPOTHESIS_PROFILE=explore draws fresh examples each run (and remembers failures in
# .hypothesis/) for looking beyond the fixed sample; a failure it finds is replayed with the
# seed it prints (pytest --hypothesis-seed=N).
settings.register_profile("derandomized", derandomize=True, database=None)
settings.register_profile("explore", derandomize=False)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "derandomized"))


def without_local_constants() -> None:
    """Keep hypothesis from mixing literals of the code under test into its draws. Since 6.13x
    about one draw in twenty picks a constant harvested from the source of every local module
    loaded so far (``hypothesis.internal.conjecture.providers._get_local_constants``), so a
    "fixed" sample changed whenever accelsim's source changed, and with the modules a test
    session happened to have imported (xdist workers import in different orders). An internal
    of hypothesis: skipped when a version no longer has it."""
    try:
        from hypothesis.internal.conjecture import providers
    except ImportError:  # pragma: no cover - another hypothesis layout
        return
    if hasattr(providers, "_get_local_constants") and hasattr(providers, "Constants"):
        none = providers.Constants()
        providers._get_local_constants = lambda: none


if os.environ.get("HYPOTHESIS_PROFILE", "derandomized") == "derandomized":
    without_local_constants()

BASE_CHIP: dict[str, Any] = {
    "name": "toy",
    "frequency_Hz": "1 GHz",
    "num_cores": 1,
    "core": {
        "tensor": {"rows": 128, "cols": 128, "count": 1, "dataflow": "ws",
                   "macs_per_cycle": {"bf16": 16384, "fp32": 4096},
                   "preload_overlap": False, "min_pass_cycles": 0},
        "vector": {"lanes": 128, "ops_per_cycle": {"bf16": 128, "fp32": 128}},
        "scalar": {"transcendentals_per_cycle": 128},
        "sram": {"capacity_bytes": "64 MiB"},
    },
    "hbm": {"capacity_bytes": "16 GiB", "bandwidth_Bps": "1 TB/s"},
    "dma": {"engines": 1, "bandwidth_per_engine_Bps": "1 TB/s"},
}


def make_system(chip: dict[str, Any] | None = None, **system: Any) -> SystemSpec:
    """A toy system; ``chip`` entries are deep-merged into BASE_CHIP."""
    c = copy.deepcopy(BASE_CHIP)

    def merge(dst: dict, src: dict) -> None:
        for k, v in src.items():
            if isinstance(v, dict) and isinstance(dst.get(k), dict):
                merge(dst[k], v)
            else:
                dst[k] = v

    merge(c, chip or {})
    return SystemSpec.model_validate({"name": "toy", "chip": c, **system})


@pytest.fixture
def toy() -> SystemSpec:
    return make_system()


def pytest_addoption(parser):
    parser.addoption("--update-golden", action="store_true", default=False,
                     help="Rewrite tests/golden/*.json from the current model instead of comparing.")


@pytest.fixture
def update_golden(request) -> bool:
    return request.config.getoption("--update-golden")
