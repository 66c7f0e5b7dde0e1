"""Golden regression: the summary of every system preset running llama-3-8b (decode and
prefill), in ideal mode (the peak-rate bound, ``llama-3-8b.json``) and in realistic mode (the
preset's achievable priors and its stack, ``llama-3-8b-realistic.json``). A change in any
number fails here; regenerate deliberately with ``pytest tests/test_golden.py --update-golden``
and explain the change in the commit."""

import json
from pathlib import Path

import pytest

from accelsim.api import evaluate
from accelsim.arch import list_presets, load_system

GOLDENS = {"ideal": Path(__file__).parent / "golden" / "llama-3-8b.json",
           "realistic": Path(__file__).parent / "golden" / "llama-3-8b-realistic.json"}
KEYS = ("latency_s", "tokens_per_s", "mfu", "memory_bytes_per_chip", "hbm_bytes_per_chip", "num_ops", "tp")
CASES = [(s, p) for s in list_presets() for p in ("decode", "prefill")]
MODES = tuple(GOLDENS)


def tp_for(system) -> int:
    """Tensor-parallel ranks over the largest power of two of chips up to 8 (on Neuron chips a
    rank is a NeuronCore: ``tp`` counts them)."""
    tp = 1
    while tp * 2 <= min(system.num_chips, 8):
        tp *= 2
    return tp * system.chip.tp_ranks


def summary(system_name: str, phase: str, mode: str) -> dict:
    system = load_system(system_name)
    r = evaluate(system, "llama-3-8b", phase=phase, batch=4, seq_len=512, context_len=1024, tp=tp_for(system),
                 mode=mode)
    s = r.summary
    return {**{k: s[k] for k in KEYS}, "time_by_bound_s": s["time_by_bound_s"]}


@pytest.fixture(scope="module")
def golden(request):
    return {m: json.loads(p.read_text()) if p.exists() else {} for m, p in GOLDENS.items()}


@pytest.mark.parametrize("mode", MODES)
def test_every_preset_has_a_golden(mode, golden, update_golden):
    if update_golden:
        data = {f"{s}/{p}": summary(s, p, mode) for s, p in CASES}
        GOLDENS[mode].parent.mkdir(exist_ok=True)
        GOLDENS[mode].write_text(json.dumps(data, indent=1, sort_keys=True) + "\n")
        pytest.skip("golden file rewritten")
    assert set(golden[mode]) == {f"{s}/{p}" for s, p in CASES}, "presets changed: regenerate with --update-golden"


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("system, phase", CASES)
def test_golden_summary(system, phase, mode, golden, update_golden):
    if update_golden:
        pytest.skip("updating")
    want = golden[mode][f"{system}/{phase}"]
    got = summary(system, phase, mode)
    for k in KEYS:
        assert got[k] == pytest.approx(want[k], rel=1e-9), k
    for b, t in want["time_by_bound_s"].items():
        assert got["time_by_bound_s"][b] == pytest.approx(t, rel=1e-9, abs=1e-15), b


@pytest.mark.parametrize("system", list_presets())
@pytest.mark.parametrize("phase", ["decode", "prefill"])
def test_llama3_70b_runs_or_says_it_does_not_fit(system, phase):
    spec = load_system(system)
    r = evaluate(spec, "llama-3-70b", phase=phase, batch=8, seq_len=1024, context_len=2048, tp=tp_for(spec))
    s = r.summary
    assert s["latency_s"] > 0 and s["num_ops"] > 80 * 10
    assert s["fits_in_hbm"] == (s["memory_bytes_per_chip"] <= spec.chip.hbm.capacity_bytes)
    if not s["fits_in_hbm"]:
        assert "does not fit" in r.warnings[0] and "--tp" in r.warnings[0]
