"""The analytical fast path (``workload.rows`` + ``sim.fast``) gives what building the graph and
costing its ops gives, to the last bit: summaries, op tables, energy, warnings, errors."""

from __future__ import annotations

import random

import pytest

import accelsim.api as api
from accelsim.api import evaluate
from accelsim.errors import AccelsimError
from accelsim.report.results import Results
from accelsim.workload import load_model

L8 = load_model("llama-3-8b")
VIT = load_model("vit-b16")
MODELS = {
    "llama-3-8b": L8, "llama-2-13b": load_model("llama-2-13b"), "gpt3-5b": load_model("gpt3-5b"),
    "tiny": load_model("tiny"),
    "sliding-window": L8.model_copy(update={"sliding_window": 300, "name": "sliding-window"}),
    "encoder": VIT.model_copy(update={"patch_size": 0, "image_size": 0, "name": "encoder",
                                      "max_position_embeddings": 8192, "num_classes": 10}),
    "encoder-headless": VIT.model_copy(update={"patch_size": 0, "image_size": 0, "name": "encoder-headless",
                                               "max_position_embeddings": 8192, "num_classes": 0}),
}
SYSTEMS = {  # system: (tensor-parallel degrees, stacks besides its own, element types)
    "dgx-h100": ((1, 2, 4, 8), ("vllm-cuda", "cuda-native", "trtllm-legacy-cuda"), ("bf16", "fp16", "fp8")),
    "a100-sxm-80gb": ((1,), ("vllm-cuda", "cuda-native"), ("bf16", "fp16")),
    "mi300x-8": ((1, 2, 8), ("vllm-rocm",), ("bf16", "fp8")),
    "trn2-48xl": ((1, 2, 4, 8), ("nxd-inference", "transformers-neuronx"), ("bf16",)),
    "inf2-48xl": ((2, 4, 8), ("transformers-neuronx",), ("bf16",)),
    "tpu-v5e": ((1,), ("jetstream-tpu",), ("bf16",)),
    "edge-npu": ((1,), (), ("bf16", "int8")),
}


def _points(n: int, seed: int):
    rnd = random.Random(seed)
    for _ in range(n):
        system = rnd.choice(list(SYSTEMS))
        tps, stacks, dtypes = SYSTEMS[system]
        phase = rnd.choice(["prefill", "decode"])
        kw = dict(phase=phase, batch=rnd.choice([1, 3, 8]), tp=rnd.choice(tps), dtype=rnd.choice(dtypes),
                  attention=rnd.choice([None, "flash", "unfused", "unfused_grouped"]))
        kw["seq_len" if phase == "prefill" else "context_len"] = rnd.choice([17, 128, 1000, 5000])
        mode = rnd.choice(["realistic", "realistic", "ideal"])
        kw.update(mode=mode, stack=None if mode == "ideal" else rnd.choice((None,) + stacks))
        yield system, rnd.choice(list(MODELS)), kw


def _both(system, model, kw, monkeypatch):
    out = []
    for fast in (True, False):
        with monkeypatch.context() as m:
            if not fast:
                m.setattr(api, "_fast", lambda *a, **k: None)
            try:
                r = evaluate(system, MODELS.get(model, model), **kw)
                out.append((r.summary, r.ops.astype(str).values.tolist(), r.warnings,
                            [o.name for o in r.graph.ops()]))
            except AccelsimError as e:
                out.append((type(e).__name__, str(e)))
    return out


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_fast_path_gives_what_the_graph_gives(seed, monkeypatch):
    ok = 0
    for system, model, kw in _points(25, seed):
        fast, slow = _both(system, model, kw, monkeypatch)
        assert fast == slow, (system, model, kw)
        ok += len(fast) == 4
    assert ok >= 15  # most points evaluate (the rest are refused alike: a tp that splits no heads, fp8 on an A100)


def test_fast_path_is_taken_and_builds_the_graph_only_when_asked(monkeypatch):
    calls = []
    real = api._fast
    monkeypatch.setattr(api, "_fast", lambda *a, **k: calls.append(1) or real(*a, **k))
    r = evaluate("dgx-h100", "llama-3-70b", phase="decode", batch=8, context_len=2048, tp=8)
    assert calls and isinstance(r, Results)
    assert callable(r._graph)  # not built yet
    assert r.graph.meta.batch == 8 and len(r.graph.ops()) == r.summary["num_ops"]
    assert r.ops["mapping"].map(type).eq(str).all()  # GEMM mappings rendered as text in the table


def test_fast_results_pickle_before_their_graph_is_built():
    import pickle

    r = evaluate("dgx-h100", "llama-3-8b", phase="prefill", batch=2, seq_len=300, tp=2)
    back = pickle.loads(pickle.dumps(r))
    assert back.summary == r.summary and back.ops.equals(r.ops) and len(back.graph.ops()) == r.summary["num_ops"]


@pytest.mark.parametrize("case", [
    dict(system="dgx-h100", model="mixtral-8x7b", kw=dict(phase="decode", tp=2)),  # experts: the graph path
    dict(system="dgx-h100", model="llama-3-8b", kw=dict(phase="decode", stack="cuda-eager")),  # composite ops
    dict(system="dgx-h100", model="llama-3-8b", kw=dict(phase="decode", compression="w4a16-g128")),
    # a decode kernel per query head: the fast path costs that attention in Python
    dict(system="dgx-h100", model="llama-3-8b", kw=dict(phase="decode", stack="trtllm-legacy-cuda", tp=2)),
    dict(system="dgx-h100", model="llama-3-8b", kw=dict(phase="prefill", stack="trtllm-legacy-cuda", seq_len=333)),
    # tensor parallelism over two nodes: a hierarchical all-reduce, chosen in Python
    dict(system="dgx-h100", model="llama-3-70b", kw=dict(phase="decode", batch=8, tp=16)),
])
def test_what_the_fast_path_does_not_cover_gives_the_same(case, monkeypatch):
    fast, slow = _both(case["system"], case["model"], case["kw"], monkeypatch)
    assert fast == slow and len(fast) == 4


@pytest.mark.parametrize("kw", [
    dict(phase="decode", tp=3),                      # splits no heads
    dict(phase="decode", tp=2),                      # more chips than the system has
    dict(phase="decode", dtype="fp8"),               # no FP8 rate on an A100
    dict(phase="prefill", seq_len=0),
    dict(phase="sideways"),
])
def test_refusals_are_the_same(kw, monkeypatch):
    fast, slow = _both("a100-sxm-80gb", "llama-3-8b", kw, monkeypatch)
    assert fast == slow and len(fast) == 2


@pytest.mark.parametrize("seed", [4, 5])
def test_phase_table_holds_the_graphs_stored_ops(seed):
    """The fast path's table (shapes as multiples of a point's variables) gives, at a point, the
    stored ops ``build`` makes for it: every name, count, element type and shape."""
    from accelsim.workload import build
    from accelsim.workload import rows as R
    from accelsim.workload.build import checked_args

    seen = 0
    for system, model, kw in _points(40, seed):
        cfg, dt, phase = MODELS[model], kw["dtype"], kw["phase"]
        attention = kw["attention"] or "flash"
        try:
            b, s, c, kv, tp = checked_args(cfg, phase, kw["batch"], kw.get("seq_len", 0), kw.get("context_len", 0),
                                           kw["tp"], dt, attention)
        except AccelsimError:
            continue
        ops, count = build(cfg, phase, batch=b, seq_len=s, context_len=c, tp=tp, dtype=dt, attention=attention).slots()
        t = R.phase_table(cfg, phase, tp, dt, attention)
        q = s if phase == "prefill" else 1
        var = (1, b * q, b, q, kv)
        assert [r[1] for r in t.rows] == [o.name for o in ops] and t.count.tolist() == count.tolist()
        assert t.ops == int(count.sum())
        for i, (r, op) in enumerate(zip(t.rows, ops)):
            f = [cf * var[v] for cf, v in r[5]]
            if i in t.coll or i in t.flash:
                w = R.given_row(cfg, r, b, q, kv, tp, dt)
                assert (w[4:] == (op.op, op.bytes_per_rank, op.group) if r[0] == "coll" else w[4] == op)
                assert op.dtype == dt
            elif r[0] == "mm":
                assert (op.m, op.n, op.k, op.batch, op.b_shared) == (*f[:4], bool(f[4]))
                assert op.dtype_a == op.dtype_b == op.dtype_out == dt and not (op.sparsity or op.emulate)
            elif r[0] == "ew":
                assert (op.fn, op.elements, op.out_elements or op.elements) == (r[4], f[0], f[0]) and op.dtype == dt
                assert (op.dtype_out or dt) == dt and not op.unvectorized
            elif r[0] in ("norm", "softmax"):
                assert (op.kind, op.rows, op.cols, op.dtype) == (r[4], f[0], f[1], dt)
            elif r[0] == "embed":
                assert (op.tokens, op.hidden, op.vocab, op.dtype) == (*f[:3], dt)
            else:  # a K/V append
                assert (op.mode, op.batch, op.tokens, op.kv_heads, op.head_dim, op.dtype, op.kv_shared) == \
                    ("append", *f[:4], dt, False)
        seen += 1
    assert seen >= 25


def test_point_kernel_compiled_gives_its_python_twin_to_the_bit(monkeypatch):
    """``rowkernel.cost_rows`` compiled and as plain Python give the same rows and sums."""
    from accelsim.sim import fast as F

    kernel, checked = F.cost_rows, []

    def both(*args):
        twin = [a.copy() if hasattr(a, "copy") else a for a in args]
        kernel.compiled()(*args)
        kernel.py_func(*twin)
        assert args[-2].tobytes() == twin[-2].tobytes() and args[-1].tobytes() == twin[-1].tobytes()
        checked.append(1)

    monkeypatch.setattr(F, "cost_rows", both)
    for system, model, kw in _points(12, 6):
        try:
            evaluate(system, MODELS[model], **kw)
        except AccelsimError:
            pass
    assert len(checked) >= 6


def test_a_refused_gemm_leaves_no_winner_behind(monkeypatch):
    """A GEMM no tile of which fits is refused at every point that has it, and the point state
    keeps no shape or hint that leads to a refused search's row (nor two shapes to one row)."""
    import math

    from accelsim.arch import load_system
    from accelsim.errors import LoweringError
    from accelsim.sim import fast as F

    made = []

    class Recorded(F.PointState):
        __slots__ = ()

        def __init__(self):
            super().__init__()
            made.append(self)

    monkeypatch.setattr(F, "PointState", Recorded)
    tiny = load_system("dgx-h100", ["chip.core.sram.capacity_bytes=64"])
    for batch in (4, 5, 4):
        with pytest.raises(LoweringError, match=r"L0\.qkv_proj \(\d+x6144x4096\): no tile fits the 64-byte"):
            evaluate(tiny, MODELS["llama-3-8b"], phase="decode", batch=batch)
    ok = load_system("dgx-h100")
    evaluate(ok, MODELS["llama-3-8b"], phase="decode", batch=4)
    assert made
    for ps in made:
        rows = list(ps.index.values())
        assert len(set(rows)) == len(rows) and all(j < ps.used for j in rows)
        assert all(math.isfinite(ps.store[j, 0]) for j in rows + list(ps.hints.values()))


def test_a_loop_over_one_system_and_model_object_gives_what_fresh_objects_give():
    """``evaluate`` keeps what it works out from the system, stack, model, phase, tp and
    attention per object (``api._Setup``) and the fast path's terms per element type once a point
    has passed: valid and refused points in any order give, on the same objects, what a fresh
    model object gives (every point's arguments are still checked)."""
    from accelsim.arch import load_system

    system, m = load_system("dgx-h100"), MODELS["llama-3-8b"]
    points = [dict(phase="decode", batch=4), dict(phase="decode", batch=0), dict(phase="decode", batch=4,
              attention="bogus"), dict(phase="decode", batch=5, dtype="fp8"), dict(phase="decode", batch=6),
              dict(phase="prefill", seq_len=100, tp=2), dict(phase="prefill", seq_len=100, tp=3),
              dict(phase="decode", batch=4, dtype=["bf16"]), dict(phase="decode", batch=4, tp=2.0),
              dict(phase="decode", batch=7, dtype="fp16")]

    def run(model, kw):
        try:
            r = evaluate(system, model, **kw)
            return r.summary, r.ops.astype(str).values.tolist()
        except AccelsimError as e:
            return type(e).__name__, str(e)

    for kw in points * 2:
        assert run(m, kw) == run(m.model_copy(), kw), kw
