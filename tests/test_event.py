"""Event tier end to end: agreement with the analytical tier and SCALE-Sim, the roofline
bound, conservation by lowering, starved-DMA / small-SRAM cases and their attribution."""

import csv
import json
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner
from hypothesis import given, settings, strategies as st

from accelsim.api import evaluate
from accelsim.arch import load_system
from accelsim.cli import main
from accelsim.lower.lowering import lower
from accelsim.lower.schedule import CAT_TENSOR, XFER
from accelsim.report.trace import check_trace_file
from accelsim.sim.analytical import evaluate_arrays
from accelsim.sim.event import simulate
from accelsim.sim.result import BLOCK_SLOT
from accelsim.workload.graph import WorkloadGraph, WorkloadMeta
from accelsim.workload.ops import MatMul

from conftest import make_system

ROWS = list(csv.DictReader(open(Path(__file__).parent / "data" / "scalesim_reference.csv")))


def gemm_graph(m, n, k, **kw):
    g = WorkloadGraph(WorkloadMeta(model="gemm", phase="prefill", batch=1))
    g.add(MatMul(name="gemm", role="gemm", m=m, n=n, k=k, b_shared=True, **kw))
    return g


@pytest.mark.parametrize("system, shape", [("trn2", (8192, 8192, 8192)), ("trn2", (4096, 4096, 4096)),
                                           ("a100-sxm-80gb", (8192, 8192, 8192)), ("tpu-v5e", (4096, 4096, 4096))])
def test_compute_bound_gemm_agrees_with_analytical(system, shape):
    spec = load_system(system)
    g = gemm_graph(*shape)
    run = simulate(g, spec)
    analytical = evaluate_arrays(g, spec)["time_s"][0]
    assert run.makespan_s == pytest.approx(analytical, rel=0.05)
    assert max(run.attribution.total_s, key=run.attribution.total_s.get) == "compute"


@pytest.mark.parametrize("system", ["trn2", "tpu-v5e"])
@pytest.mark.parametrize("seq", [2048, 8192])
def test_prefill_attention_agrees_with_analytical_on_systolic_arrays(system, seq):
    # causal GQA prefill attention (32 query heads over 8 K/V heads, head dim 128) on chips
    # with large systolic arrays and no chip-shared cache. The event tier streams each unit's
    # K/V in 512-key chunks; a chunk's passes used to pay the array's fill and drain each
    # (2R + C cycles against 128 streamed rows), so a TPU v5e 8k prefill ran 2x the closed
    # form, which counts one pass over the stream; now a unit's passes are counted once and
    # shared out over its chunks. The closed form charged every query tile the whole context
    # (Trainium2 8k: 0.53x the event tier); now the keys each tile sees, as the event tier.
    from accelsim.workload.ops import FlashAttention

    spec = load_system(system)
    g = WorkloadGraph(WorkloadMeta(model="attn", phase="prefill", batch=1, seq_len=seq))
    g.add(FlashAttention(name="attn", role="attn", batch=1, heads=32, kv_heads=8, q_len=seq, kv_len=seq,
                         head_dim=128, causal=True, dtype="bf16"))
    run = simulate(g, spec)
    assert run.makespan_s == pytest.approx(evaluate_arrays(g, spec)["time_s"][0], rel=0.05)


@pytest.mark.parametrize("system", ["a100-sxm-80gb", "mi300x", "h100-sxm-80gb"])
def test_attention_kv_rereads_hit_the_shared_cache_in_both_tiers(system):
    # each query tile streams the K/V it sees through its core's load path; with a chip-shared
    # cache holding a head's K/V, HBM supplies them once (the closed form's HBM bytes) and the
    # cache serves the other tiles. The event tier's K/V loads counted every byte against HBM:
    # an A100 8k causal prefill ran 1.35x the closed form and an MI300X one 1.41x (realistic
    # mode), now 1.02x and 1.03x (here, ideal mode: 1.02x and 1.06x).
    from accelsim.workload.ops import FlashAttention

    spec = load_system(system)
    g = WorkloadGraph(WorkloadMeta(model="attn", phase="prefill", batch=1, seq_len=8192))
    g.add(FlashAttention(name="attn", role="attn", batch=1, heads=32, kv_heads=8, q_len=8192, kv_len=8192,
                         head_dim=128, causal=True, dtype="bf16"))
    a = evaluate_arrays(g, spec)
    s = lower(g, spec)
    moves = (s.kind == XFER) & ((s.category == 3) | (s.category == 4))  # Q and K/V in, O out
    assert (s.nbytes[moves] * s.weight[moves]).sum() == pytest.approx(a["hbm_bytes"][0], rel=0.01)
    if system != "h100-sxm-80gb":  # the H100's SMs each pull their K/V through a 42 GB/s share of the L2: 1.37x
        assert simulate(g, spec).makespan_s == pytest.approx(a["time_s"][0], rel=0.08)


@pytest.mark.parametrize("system", ["mi300x", "h100-sxm-80gb", "a100-sxm-80gb", "h200-sxm-141gb"])
def test_hbm_bound_decode_gemm_agrees_with_analytical(system):
    # a decode GEMM (8 x 4096 x 4096) only streams its weights: HBM-bound, its operands staged
    # through the chip-shared cache. Before a K step's two operand loads were one transfer, each
    # core's in-order DMA flow moved the weight chunk and then the activation chunk, and the
    # cores, running alike, left HBM idle together: the event tier ran 10-30 % over the closed form
    # (MI300X 12.63 against 11.10 us with HBM and SRAM x1.5); now within a few per cent. The HBM
    # bytes the transfers carry are the mapping's, split between the operands as before.
    spec = load_system(system)
    g = gemm_graph(8, 4096, 4096)
    run = simulate(g, spec)
    a = evaluate_arrays(g, spec)
    assert run.makespan_s == pytest.approx(a["time_s"][0], rel=0.05)
    s = run.schedule
    xfer = s.kind == XFER
    from accelsim.sim.analytical import chip_model
    from accelsim.cost.op_cost import gemm_mapping

    f = gemm_mapping(chip_model(spec), g.ops()[0])
    moved_in = (s.nbytes * s.weight)[xfer & (s.category == 3)].sum()
    assert moved_in == pytest.approx(f["a_hbm_bytes"] + f["b_hbm_bytes"], rel=1e-9)


@pytest.mark.parametrize("row", ROWS, ids=[f"{r['layer']}-{r['array_rows']}-{r['dataflow']}" for r in ROWS])
def test_event_tier_reproduces_scalesim_compute_cycles(row):
    # one core with the reference array, SCALE-Sim's sequential folds, 1 GHz, ample SRAM and
    # bandwidth: the tensor engine's busy cycles are SCALE-Sim's total cycles (+1: it reports
    # the index of the last cycle)
    R, C = int(row["array_rows"]), int(row["array_cols"])
    spec = make_system({"core": {"tensor": {"rows": R, "cols": C, "dataflow": row["dataflow"],
                                            "macs_per_cycle": {"bf16": R * C}, "preload_overlap": False},
                                 "sram": {"capacity_bytes": "1 GiB"}},
                        "hbm": {"bandwidth_Bps": "1 PB/s"}, "dma": {"bandwidth_per_engine_Bps": "1 PB/s"}})
    run = simulate(gemm_graph(int(row["M"]), int(row["N"]), int(row["K"])), spec)
    s, r = run.schedule, run.result
    tensor = s.category == CAT_TENSOR
    cycles = (r.end_s - r.start_s)[tensor].sum() * 1e9
    assert cycles == pytest.approx(int(row["total_cycles"]) + 1, rel=1e-9)
    analytical = evaluate_arrays(gemm_graph(int(row["M"]), int(row["N"]), int(row["K"])), spec)["compute_s"][0]
    assert analytical * 1e9 == pytest.approx(int(row["total_cycles"]) + 1, rel=1e-9)


gemms = st.tuples(st.integers(1, 2048), st.integers(1, 2048), st.integers(1, 2048))
chips = st.fixed_dictionaries({
    "num_cores": st.integers(1, 8),
    "core": st.fixed_dictionaries({
        "tensor": st.fixed_dictionaries({"rows": st.sampled_from([16, 64, 128]), "cols": st.sampled_from([16, 64, 128]),
                                         "dataflow": st.sampled_from(["ws", "os", "is"])}),
        "sram": st.fixed_dictionaries({"capacity_bytes": st.sampled_from([2**20, 2**23])}),
    }),
    "hbm": st.fixed_dictionaries({"bandwidth_Bps": st.sampled_from([2e11, 1e12, 3e12])}),
    "dma": st.fixed_dictionaries({"engines": st.sampled_from([1, 4, 32]),
                                  "bandwidth_per_engine_Bps": st.sampled_from([1e10, 1e11]),
                                  "setup_latency_s": st.sampled_from([0.0, 1e-6])}),
})


@settings(max_examples=30, deadline=None)
@given(chips, gemms)
def test_event_time_never_below_roofline(d, shape):
    t = d["core"]["tensor"]
    t["macs_per_cycle"] = {"bf16": t["rows"] * t["cols"]}
    spec = make_system(d)
    m, n, k = shape
    op = MatMul(m=m, n=n, k=k, b_shared=True)
    try:
        run = simulate(gemm_graph(m, n, k), spec)
    except Exception as e:  # a tile that fits no SRAM is a clear LoweringError, nothing else
        assert type(e).__name__ == "LoweringError"
        return
    roof = max(op.flops() / spec.chip.peak_flops("bf16"), op.bytes() / spec.chip.hbm.bandwidth_Bps)
    assert run.makespan_s >= roof * (1 - 1e-9)


def test_lowering_conserves_flops_and_bytes():
    spec = load_system("trn2")
    # order-0 style check by hand: FLOPs exactly 2MNK; DMA-in at least the compulsory operand
    # bytes, DMA-out exactly the output bytes
    m, n, k = 1000, 3000, 700
    s = lower(gemm_graph(m, n, k), spec)
    assert s.flops.sum() == pytest.approx(2.0 * m * n * k, rel=1e-12)
    dma_in = s.nbytes[(s.kind == XFER) & (s.category == 3)].sum()
    dma_out = s.nbytes[(s.kind == XFER) & (s.category == 4)].sum()
    assert dma_out == pytest.approx(m * n * 2.0)
    assert dma_in >= (m * k + k * n) * 2.0
    # and for a whole decode step: lowered FLOPs equal the graph's
    g = __import__("accelsim.workload", fromlist=["decode"]).decode("tiny", batch=2, context_len=64)
    s = lower(g, spec)
    tensor_flops = sum(o.flops() for o in g.ops() if o.engine == "tensor")
    assert s.flops.sum() == pytest.approx(tensor_flops, rel=1e-9)


def test_starved_dma_and_small_sram_are_named():
    # the same GEMM on a trn2 whose cores keep one slow DMA queue with a 5 us issue cost:
    # the event tier pays every transfer's issue and cannot overlap them; the analytical tier
    # only sees the bandwidth. And a 1 MiB SRAM leaves two buffer slots: loads stall on slots.
    g = gemm_graph(2048, 2048, 2048)
    starved = load_system("trn2", ["chip.dma.engines=8", "chip.dma.setup_latency_s=5 us"])
    run = simulate(g, starved)
    analytical = evaluate_arrays(g, starved)["time_s"][0]
    assert run.makespan_s > 1.5 * analytical
    assert max(run.attribution.total_s, key=run.attribution.total_s.get) == "dma"
    small = load_system("trn2", ["chip.dma.setup_latency_s=5 us", "chip.core.sram.capacity_bytes=1 MiB"])
    run = simulate(g, small)
    assert run.makespan_s > evaluate_arrays(g, small)["time_s"][0]
    # loads wait for buffer slots (each wait then pays the 5 us issue on the critical path),
    # which the 24 MiB SRAM never makes them do
    roomy = simulate(g, load_system("trn2", ["chip.dma.setup_latency_s=5 us"]))
    assert (run.result.block_kind == BLOCK_SLOT).sum() > 0 == (roomy.result.block_kind == BLOCK_SLOT).sum()
    assert run.makespan_s > 1.5 * roomy.makespan_s


def test_decode_step_attribution_names_hbm_and_the_mlp():
    res = evaluate("trn2", "llama-3-8b", phase="decode", batch=8, context_len=2048, fidelity="event")
    s = res.summary
    assert s["fidelity"] == "event" and s["latency_s"] >= 0.95 * s["analytical_latency_s"]
    cp = s["critical_path_s"]
    assert sum(cp.values()) == pytest.approx(s["latency_s"], rel=1e-9)
    assert cp["hbm"] + cp["dma"] > 0.7 * s["latency_s"]
    assert "mlp_up" in s["bottleneck"]
    # decode reads every weight once: the HBM time cannot beat bytes / bandwidth
    assert s["latency_s"] >= s["weight_bytes_per_chip"] / 2.9e12


def test_cli_event_trace_and_timeline(tmp_path):
    trace, png = tmp_path / "t.json", tmp_path / "t.png"
    r = CliRunner().invoke(main, ["run", "trn2", "tiny", "--phase", "decode", "--batch", "4", "--context", "256",
                                  "--fidelity", "event", "--trace", str(trace), "--timeline", str(png), "--json"])
    assert r.exit_code == 0, r.output
    out = json.loads(r.output)
    assert out["fidelity"] == "event"
    assert set(out["critical_path_s"]) >= {"compute", "hbm", "dma", "vector", "sram", "interconnect", "overhead"}
    assert set(out["utilization"]) >= {"tensor", "vector", "scalar", "dma"}
    assert all(0.0 <= v <= 1.0 for v in out["utilization"].values())
    assert check_trace_file(trace) == []
    data = json.loads(trace.read_text())
    xs = [e for e in data["traceEvents"] if e["ph"] == "X"]
    assert xs and all(isinstance(e["ts"], (int, float)) and e["dur"] >= 0 for e in xs)
    assert png.read_bytes()[:4] == b"\x89PNG"


def test_trace_needs_event_fidelity():
    r = CliRunner().invoke(main, ["run", "trn2", "tiny", "--trace", "x.json"])
    assert r.exit_code != 0 and "--fidelity event" in r.output


def test_split_k_reduction_runs_over_all_cores():
    """512 x 512 x 65536 on an H100 maps to 128 x 256 tiles split 16 ways over K: 8 output
    tiles, so the partials' reduction is cut into 132 // 8 = 16 row pieces per tile on 128
    distinct cores (as a separate reduction kernel runs), not one core per output tile."""
    from accelsim.cost.op_cost import ChipModel, gemm_mapping
    from accelsim.lower.schedule import CAT_VECTOR

    h100 = load_system("h100-sxm-80gb")
    mm = MatMul(name="g", role="gemm", m=512, n=512, k=65536, b_shared=True)
    f = gemm_mapping(ChipModel(h100), mm)
    assert (f["tile_m"], f["tile_n"], f["split_k"]) == (128, 256, 16)
    g = WorkloadGraph(WorkloadMeta(model="gemm", phase="prefill", batch=1))
    g.add(mm)
    sched = lower(g, h100)
    tiles = 4 * 2
    vec = [t for t in range(sched.num_tasks) if sched.category[t] == CAT_VECTOR]
    # one epilogue per (core, K slice) group, then 16 reduction pieces per output tile
    reduce_tasks = vec[-tiles * 16:]
    cores = {int(sched.resource[t]) for t in reduce_tasks}  # each core has its own vector engine
    assert len(reduce_tasks) == tiles * 16 and len(cores) == tiles * 16


@pytest.mark.parametrize("system,model,phase,kw", [
    ("trn2", "llama-3-8b", "decode", dict(batch=8, context_len=2048)),
    ("dgx-h100", "mixtral-8x7b", "prefill", dict(batch=1, seq_len=128, tp=8)),
    ("dgx-h100", "llama-3-8b", "decode", dict(batch=4, context_len=1024, compression="w4a16-g128")),
])
def test_replayed_ops_lower_as_fresh_ones(system, model, phase, kw):
    # an op equal to an earlier one gets that op's tasks again, renumbered: the schedule is the
    # one lowering every op afresh gives, array by array
    from accelsim.lower.schedule import ARRAY_FIELDS, LIST_FIELDS
    from accelsim.workload import build, load_model

    spec = load_system(system)
    g = build(load_model(model).model_copy(update={"num_hidden_layers": 3}), phase, **kw)
    fast, slow = lower(g, spec), lower(g, spec, replay=False)
    assert fast.num_tasks == slow.num_tasks > 1000
    for f in ARRAY_FIELDS:
        a, b = getattr(fast, f), getattr(slow, f)
        assert a.dtype == b.dtype and np.array_equal(a, b), f
    for f in LIST_FIELDS:
        assert getattr(fast, f) == getattr(slow, f), f


@pytest.mark.parametrize("system", ["dgx-h100", "dgx-a100"])
def test_parallel_branch_does_not_deadlock(system):
    # a ResNet downsample runs beside its block's convolutions: its first weight load used to
    # wait for the previous op in program order (conv3, which starts after it), so its later
    # loads took every SRAM slot first and the schedule deadlocked; it no longer prefetches
    r = evaluate(system, "resnet50", phase="prefill", batch=4, fidelity="event")
    ana = r.summary["analytical_latency_s"]
    assert 0.9 * ana <= r.summary["latency_s"] <= 1.25 * ana


def test_long_attention_streams_are_cut_into_bounded_steps():
    from accelsim.lower.attention import MAX_KV_STEPS, _taper
    from accelsim.workload import build, load_model

    for n in (1, 5, MAX_KV_STEPS, MAX_KV_STEPS + 1, 100, 4096, 65536):
        steps = _taper(n)
        assert sum(steps) == n and steps[0] == 1 and steps[-1] == 1
        assert len(steps) <= MAX_KV_STEPS + 2 * max(1, n // MAX_KV_STEPS).bit_length() + 1
    # the attention op's tasks grow with the units (linear in the prompt), not with units x
    # key chunks (quadratic): 4x the prompt, at most ~4x the tasks
    spec = load_system("trn2")
    m = load_model("llama-3-8b").model_copy(update={"num_hidden_layers": 1})

    def attn_tasks(seq):
        s = lower(build(m, "prefill", batch=1, seq_len=seq), spec)
        return int((np.array(s.op_roles)[s.op] == "attn").sum())

    assert attn_tasks(16384) <= 4.5 * attn_tasks(4096)


def test_split_k_last_wave_reduction_spreads_over_the_cores():
    """1024 x 6144 x 16384 on an H100 maps to 128 x 256 tiles split 2 ways (both operands
    streamed; tile t is row t // 48, K slice (t // 24) % 2, column t % 24): 384 tiles
    dealt in contiguous blocks, 3 to each of cores 0-119 and 2 to the other 12, so 3 waves. The
    last wave is tile 3c + 2 of cores 0-119, whose columns are 2, 5, .., 23 (8 of 24) in each of
    the 8 rows: 64 output tiles reduced after the tensor passes end, each cut into 132 // 64 = 2
    row pieces; the other 128 output tiles (reduced while later waves compute) into
    max(1, 132 // 192) = 1. The late pieces go first to cores 120-131 (two tiles each, free
    earliest), then 0, 1, ..; the others round robin from core 0: 128 + 128 pieces over all 132
    cores, at most 2 on one, and each of cores 120-131 holds a late piece."""
    from accelsim.cost.op_cost import ChipModel, gemm_mapping
    from accelsim.lower.schedule import CAT_VECTOR

    h100 = load_system("h100-sxm-80gb")
    mm = MatMul(name="g", role="gemm", m=1024, n=6144, k=16384, b_shared=True)
    f = gemm_mapping(ChipModel(h100), mm)
    assert (f["tile_m"], f["tile_n"], f["split_k"], f["waves"], f["order"]) == (128, 256, 2, 3, 0)
    g = WorkloadGraph(WorkloadMeta(model="gemm", phase="prefill", batch=1))
    g.add(mm)
    sched = lower(g, h100)
    vec = [t for t in range(sched.num_tasks) if sched.category[t] == CAT_VECTOR]
    assert len(vec) == 384 + 64 * 2 + 128  # epilogues, then the reduction pieces
    pieces = vec[384:]
    by_core = {}
    for t in pieces:
        by_core.setdefault(int(sched.resource[t]), []).append(t)
    assert len(by_core) == 132 and max(len(v) for v in by_core.values()) <= 2
    tile_of = {t: tuple(sched.deps(int(sched.deps(t)[0]))) for t in pieces}  # the partials it reads
    per_tile = {}
    for t in pieces:
        per_tile.setdefault(tile_of[t], []).append(t)
    core = {r: int(name[4:].split(".")[0]) for r, name in enumerate(sched.res_names) if name.startswith("core")}
    late_cores = {core[int(sched.resource[t])] for ts in per_tile.values() if len(ts) == 2 for t in ts}
    assert sum(len(ts) == 2 for ts in per_tile.values()) == 64 and set(range(120, 132)) <= late_cores


def test_an_event_run_keeps_its_op_table_lazy():
    # the event tier's per-op start and end wait as pending columns until the table is asked
    # for, so an event-tier evaluate imports neither pandas nor pyarrow (~0.3 s a process)
    import subprocess
    import sys

    code = ("import sys; from accelsim.api import evaluate; "
            "r = evaluate('trn2', 'tiny', phase='decode', batch=2, fidelity='event'); "
            "assert 'pandas' not in sys.modules, 'pandas imported'; "
            "t = r.ops; assert 'pandas' in sys.modules; "
            "assert (t['event_end_s'] >= t['event_start_s']).all(); "
            "assert abs(t['event_end_s'].max() - r.event.makespan_s) <= 1e-9 * r.event.makespan_s")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr[-2000:]
