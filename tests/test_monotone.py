"""More hardware is never slower, in both tiers: HBM bandwidth, core SRAM, MACs per cycle and
link bandwidth, each raised on random chips (shipped presets with their rates scaled) running
small workloads (one transformer layer, prefill or decode). The tolerance is 0.1 %; the
analytical tier's mapping search may trade up to ``TIME_TOLERANCE`` (0.05 %) of its time for
less compute, which stays inside it."""

from __future__ import annotations

from hypothesis import HealthCheck, given, settings, strategies as st

from accelsim.api import evaluate
from accelsim.arch import load_system
from accelsim.cost.mapping import TIME_TOLERANCE
from accelsim.workload import load_model

TOLERANCE = 1e-3
assert TIME_TOLERANCE < TOLERANCE
MAPPING_RESIDUAL = TOLERANCE
"""The event tier's tolerance for SRAM and MACs, which can change a GEMM's tiling: 0.1 % as for
the other knobs since the sixteenth session (it was 0.2 %, and a strict xfail recorded a +4.8 %
case). Beyond the CI sample: ``benchmarks/monotone_sample.py`` (its derandomised sample and seeds
11-31, 200 SRAM / MAC checks each, twentieth session) finds none of 4,400 slower than 0.1 % (README,
"Reliability"). 5 of 4,400 and +0.35 % before the cores of an op shared HBM by the bytes each has
left, a GEMM's last K steps shrank by its compute-to-load ratio, a core's loads stopped queueing
behind its stores and a resident walk's first tile moved its panel at the panel operand's own HBM
share in closed form (a DGX-H100 ``lm_head``, three checks; an edge NPU tiny prefill; the A100
prefill below); 11 of 4,400 and +0.53 % before the pipeline fill by bound (the edge NPU decode
below). History: 7 of 2,400 and +4.8 % (an A100
at half its HBM bandwidth, a GPT-3 5B prefill whose partial last wave of 20 tiles the closed form
spread over 108 SMs) before a partial last wave ran on its own cores, each pulling up to its load
path's peak, in both tiers; the samples of earlier sessions were drawn with hypothesis mixing
literals of accelsim's source into its draws, which ``conftest.without_local_constants`` keeps
out, so their counts are not comparable."""

SYSTEMS = ["trn2", "a100-sxm-80gb", "h100-sxm-80gb", "tpu-v5e", "mi300x", "edge-npu", "dgx-h100", "trn2-48xl"]
KNOBS = {  # path -> factor range of "more"
    "chip.hbm.bandwidth_Bps": (1.1, 3.0),
    "chip.core.sram.capacity_bytes": (1.5, 4.0),
    "chip.core.tensor.macs_per_cycle.bf16": (1.5, 4.0),
    "interconnect.link_bandwidth_Bps": (1.5, 4.0),
}
MAPPING_KNOBS = ("chip.core.sram.capacity_bytes", "chip.core.tensor.macs_per_cycle.bf16")
BASE = {  # random chips: a preset with these rates scaled first
    "chip.hbm.bandwidth_Bps": (0.5, 2.0),
    "chip.core.sram.capacity_bytes": (0.5, 2.0),
}


def _get(raw, path):
    for k in path.split("."):
        raw = raw[k]
    return raw


def _latency(system, overrides, model, kw, fidelity):
    return evaluate(system, model, overrides=overrides, fidelity=fidelity, **kw).summary["latency_s"]


def check(system, knob, factor, base, model, phase, batch, tokens, tp, fidelity="event"):
    raw = load_system(system).model_dump()
    base_over = [f"{p}={float(_get(raw, p)) * f!r}" for p, f in base.items()]
    value = float(_get(raw, knob)) * (dict(base).get(knob, 1.0))
    m = load_model(model).model_copy(update={"num_hidden_layers": 1})
    kw = {"phase": phase, "batch": batch, "tp": tp, ("seq_len" if phase == "prefill" else "context_len"): tokens}
    before = _latency(system, base_over, m, kw, fidelity)
    after = _latency(system, base_over + [f"{knob}={value * factor!r}"], m, kw, fidelity)
    tol = MAPPING_RESIDUAL if fidelity == "event" and knob in MAPPING_KNOBS else TOLERANCE
    assert after <= before * (1 + tol), (
        f"{system} {knob} x{factor:.2f} ({base}): {before * 1e6:.2f} -> {after * 1e6:.2f} us "
        f"({after / before - 1:+.3%})")


@st.composite
def points(draw):
    system = draw(st.sampled_from(SYSTEMS))
    multi = system in ("dgx-h100", "trn2-48xl")
    knob = draw(st.sampled_from([k for k in KNOBS if multi or not k.startswith("interconnect")]))
    factor = draw(st.floats(*KNOBS[knob]))
    base = {p: draw(st.floats(*r)) for p, r in BASE.items() if draw(st.booleans())}
    phase = draw(st.sampled_from(["prefill", "decode"]))
    return dict(system=system, knob=knob, factor=factor, base=base,
                model=draw(st.sampled_from(["llama-3-8b", "gpt3-5b", "tiny"])), phase=phase,
                batch=draw(st.sampled_from([1, 2, 4, 8])), tokens=draw(st.sampled_from([64, 128, 256, 512])),
                tp=draw(st.sampled_from([2, 4])) if multi else 1)


@settings(max_examples=24, deadline=None, derandomize=True, suppress_health_check=[HealthCheck.too_slow])
@given(points())
def test_event_tier_more_hardware_never_slower(p):
    check(**p)


@settings(max_examples=30, deadline=None, derandomize=True, suppress_health_check=[HealthCheck.too_slow])
@given(points())
def test_analytical_tier_more_hardware_never_slower(p):
    check(**p, fidelity="analytical")


def test_more_sram_does_not_grow_the_event_tiers_k_steps():
    # gpt3-5b prefill of 4 x 128 tokens on dgx-h100 TP4: with 1.5x the SRAM the out_proj's K
    # chunk of the mapping doubles (128 -> 256); the event tier's steps stay at STEP_BYTES, so
    # the larger SRAM is not slower (it was +0.14 %: the coarser steps drained longer)
    m = load_model("gpt3-5b").model_copy(update={"num_hidden_layers": 1})
    kw = {"phase": "prefill", "batch": 4, "seq_len": 128, "tp": 4}
    before = _latency("dgx-h100", [], m, kw, "event")
    after = _latency("dgx-h100", ["chip.core.sram.capacity_bytes=350208"], m, kw, "event")
    assert after <= before * (1 + TOLERANCE)


def test_more_macs_on_an_edge_npu_tiny_decode():
    # edge-npu with 1.77x its DRAM bandwidth, a one-layer tiny decode (batch 4, context 256):
    # with 1.77x the MACs the qkv projection (4 x 128 x 64) moved from 4 x 64 tiles (memory-bound)
    # to 4 x 32 ones (compute equal to loads), which the closed form rated 0.2 % faster because
    # it charged the memory-bound tiling its first load on top of its memory time; the event
    # tier ran the new tiling 14 % slower and the step 0.5 % slower. A memory-bound tiling's
    # tail is its last pass and store, and the step is no longer slower.
    m = load_model("tiny").model_copy(update={"num_hidden_layers": 1})
    raw = load_system("edge-npu").model_dump()
    hbm = float(_get(raw, "chip.hbm.bandwidth_Bps")) * 1.7651642866759696
    macs = float(_get(raw, "chip.core.tensor.macs_per_cycle.bf16"))
    kw = {"phase": "decode", "batch": 4, "context_len": 256}
    base = [f"chip.hbm.bandwidth_Bps={hbm!r}"]
    before = _latency("edge-npu", base, m, kw, "event")
    for f in (1.77, 3.22):
        after = _latency("edge-npu", base + [f"chip.core.tensor.macs_per_cycle.bf16={macs * f!r}"], m, kw, "event")
        assert after <= before * (1 + TOLERANCE), f


def test_issue_repro_more_hbm_bandwidth():
    # the repro of issue 13: Llama-3-8B prefill of 512 tokens on an A100, event tier, went from
    # 40.2 to 62.8 ms when HBM bandwidth was raised to 3.57 TB/s
    kw = {"phase": "prefill", "seq_len": 512}
    before = _latency("a100-sxm-80gb", [], "llama-3-8b", kw, "event")
    after = _latency("a100-sxm-80gb", ["chip.hbm.bandwidth_Bps=3.57 TB/s"], "llama-3-8b", kw, "event")
    assert after <= before * (1 + TOLERANCE)
    assert after < 0.99 * before  # prefill of 512 tokens on an A100 is partly memory-bound


def test_more_sram_with_a_resident_panel():
    # trn2-48xl with HBM and SRAM scaled to 0.566x, gpt3-5b prefill of 2 x 512 tokens (TP over 4
    # NeuronCores): with 1.5x the SRAM its mlp_down (1024 x 4096 x 16384) moved from A-resident
    # split-K 4 to a B-resident tiling whose 16 MiB panel the first tile of each walk must load
    # before it computes; the closed form spread that load over the walk and rated it 8 % faster,
    # the event tier ran it 6 % slower (+1.2 % on the step). The closed form charges each walk's
    # first tile with its panel, and the step is no longer slower.
    raw = load_system("trn2-48xl").model_dump()
    f = 0.5657429043490636
    base = [f"chip.hbm.bandwidth_Bps={float(_get(raw, 'chip.hbm.bandwidth_Bps')) * f!r}",
            f"chip.core.sram.capacity_bytes={float(_get(raw, 'chip.core.sram.capacity_bytes')) * f!r}"]
    sram = float(_get(raw, "chip.core.sram.capacity_bytes")) * f
    m = load_model("gpt3-5b").model_copy(update={"num_hidden_layers": 1})
    kw = {"phase": "prefill", "batch": 2, "seq_len": 512, "tp": 4}
    before = _latency("trn2-48xl", base, m, kw, "event")
    after = _latency("trn2-48xl", base + [f"chip.core.sram.capacity_bytes={sram * 1.5!r}"], m, kw, "event")
    assert after <= before * (1 + TOLERANCE)


def test_more_sram_with_split_k_partials():
    # h100-sxm-80gb with 1.94x the HBM bandwidth, gpt3-5b prefill of 8 x 64 tokens: with 1.94x
    # the SRAM its mlp_down (512 x 4096 x 16384) moved from 128 x 256 tiles split 2 ways to
    # 256 x 256 tiles split 4 ways, rated 1.5 % faster in closed form (its drain stored the
    # tile's result at 2 B an element) and run 3.5 % slower in the event tier, which stores the
    # fp32 partial first (+0.82 % on the step); with the partial in the drain it stays split 2
    check("h100-sxm-80gb", "chip.core.sram.capacity_bytes", 1.94, {"chip.hbm.bandwidth_Bps": 1.9375568664690577},
          "gpt3-5b", "prefill", 8, 64, 1)


def test_more_sram_with_a_compute_bound_near_tie():
    # trn2-48xl with twice the HBM bandwidth, llama-3-8b prefill of 4 x 512 tokens (TP over 2
    # NeuronCores): with twice the SRAM its mlp_down (2048 x 4096 x 14336, compute-bound: its
    # HBM traffic takes about a quarter of its compute) moved from 512 x 512 A-resident tiles to
    # 256 x 1024 B-resident ones, 0.04 % slower in closed form (a longer fill) but inside the
    # search's tie band, which then preferred the 19 % less HBM traffic; the event tier ran it
    # 0.5 % slower (+0.10 % on the step). The band is for memory-bound near-ties: a compute-bound
    # GEMM keeps the fastest tiling, so the step is the same
    raw = load_system("trn2-48xl").model_dump()
    base = [f"chip.hbm.bandwidth_Bps={float(_get(raw, 'chip.hbm.bandwidth_Bps')) * 2.0!r}"]
    more = base + [f"chip.core.sram.capacity_bytes={float(_get(raw, 'chip.core.sram.capacity_bytes')) * 2.0!r}"]
    m = load_model("llama-3-8b").model_copy(update={"num_hidden_layers": 1})
    kw = {"phase": "prefill", "batch": 4, "seq_len": 512, "tp": 2}
    tiles = [evaluate("trn2-48xl", m, overrides=o, **kw).ops.set_index("name").loc["L0.mlp_down", "mapping"]
             for o in (base, more)]
    assert tiles[0] == tiles[1] and tiles[0].startswith("tile 512x512")
    before, after = (_latency("trn2-48xl", o, m, kw, "event") for o in (base, more))
    assert after <= before * (1 + 1e-9)


def test_a100_half_hbm_prefill_with_more_macs():
    """The worst case of the stable monotone sample of the fifteenth session: an A100 at half its
    HBM bandwidth, GPT-3 5B prefill (4 x 64 tokens), 1.5x the MACs: +4.8 % in the event tier.
    Its mlp_down (256 x 4096 x 16384) moved from split-K 2 over three waves to split-K 1 over
    two, the last of 20 tiles on 108 SMs, which the closed form spread over every SM and the
    event tier streamed through 20 SMs at their even share of the L2 (120 MB at 20 x 55 GB/s).
    Both tiers now run a partial last wave on its own cores, each pulling up to its load path's
    peak (``Dma.core_peak_Bps``) while the others idle: 1,171.6 -> 1,139.7 us.

    Since the cores of one op share HBM by the bytes each has left (twentieth session), the
    split-K 2 tiling's uneven waves no longer leave a tail (1,171.6 -> 1,133.6 us at 1x the
    MACs), which made the 64x256 one-wave tiling the closed form picks at 1.5x (177.2 against
    183.1 us) the slower one in the event tier (208.5 us: its coarse K steps drained one step's
    compute after the last load; +0.30 %) until a GEMM's last K steps shrank by the ratio of a
    step's compute to its load (``lowering.ramp_ratio``): 1,139.0 -> 1,132.1 us."""
    check("a100-sxm-80gb", "chip.core.tensor.macs_per_cycle.bf16", 1.5, {"chip.hbm.bandwidth_Bps": 0.5},
          "gpt3-5b", "prefill", 4, 64, 1)


def test_a100_half_hbm_prefill_with_more_sram():
    """Seed 21 of the wide sample: an A100 at half its HBM bandwidth and 1.11x its SRAM, Llama-3-8B
    prefill (8 x 128 tokens); with 2.69x the SRAM the closed form moved ``mlp_down`` from 128x128
    split-K 2 to 64x128 split-K 4 A-resident (479.0 -> 470.1 us), which the event tier ran 1.2 %
    slower: every core loads its first tile's A panel at once, and the closed form charged that
    burst at the op's average share of HBM bytes, where the panel's own operand comes from HBM
    more often. A walk's first tile now moves its panel at the panel operand's own HBM share and
    the split-K 2 tiling stays (3,383.6 us both): it was +0.18 %."""
    check("a100-sxm-80gb", "chip.core.sram.capacity_bytes", 2.69,
          {"chip.hbm.bandwidth_Bps": 0.5, "chip.core.sram.capacity_bytes": 1.1124682729422612},
          "llama-3-8b", "prefill", 8, 128, 1)
