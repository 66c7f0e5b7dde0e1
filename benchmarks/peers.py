"""Speed of two peer LLM-performance models on the cases that benchmarks/compare.py gives accelsim.

Runs in the peer virtual environment (see benchmarks/PEERS.md), not accelsim's:

    .venv-peers/bin/python benchmarks/peers.py --rounds 1 --points 20

One JSON line per (tool, case): ``per_point_s`` is the median wall time of one call, each call
at a different design point (``design_points``), after one untimed warm-up call at a point
outside that set. Model, GPU and tool objects are built once, outside the timer. The ``sweep``
case is design points per CPU second (``time.process_time``) of a plain loop over
``sweep_grid``. A tool that fails on a case gives a line with an ``error`` field.

compare.py imports the case table and the design-point generators from this file, so both
sides time the same points; the peer tools are only imported inside their runner functions.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import time
import traceback
import warnings

# Model shapes, from the Hugging Face config.json of each model card:
#   meta-llama/Llama-2-7b-hf, meta-llama/Llama-2-70b-hf, meta-llama/Meta-Llama-3-70B.
MODELS = {
    "llama-2-7b": {"hidden": 4096, "layers": 32, "heads": 32, "kv_heads": 32, "intermediate": 11008, "vocab": 32000},
    "llama-2-70b": {"hidden": 8192, "layers": 80, "heads": 64, "kv_heads": 8, "intermediate": 28672, "vocab": 32000},
    "llama-3-70b": {"hidden": 8192, "layers": 80, "heads": 64, "kv_heads": 8, "intermediate": 28672, "vocab": 128256},
}

# Per-GPU figures from NVIDIA's datasheets: A100 (80 GB SXM) and H100 (SXM5) Tensor Core GPU.
# Dense BF16 tensor TFLOPS, HBM capacity (GB) and bandwidth (GB/s), NVLink GB/s per direction
# (A100: 600 GB/s total NVLink 3; H100: 900 GB/s total NVLink 4).
GPUS = {
    "a100-sxm-80gb": {"tflops": 312, "mem_gb": 80, "hbm_gbs": 2039, "nvlink_gbs": 300},
    "h100-sxm-80gb": {"tflops": 989, "mem_gb": 80, "hbm_gbs": 3350, "nvlink_gbs": 450},
}

# case -> model, phase, GPU (accelsim: the DGX preset holding eight of them), tensor parallelism.
CASES = {
    "llama2_7b_decode_a100_tp1": {"model": "llama-2-7b", "phase": "decode", "gpu": "a100-sxm-80gb", "system": "dgx-a100", "tp": 1},
    "llama2_70b_prefill_h100_tp8": {"model": "llama-2-70b", "phase": "prefill", "gpu": "h100-sxm-80gb", "system": "dgx-h100", "tp": 8},
    "llama3_70b_decode_h100_tp8": {"model": "llama-3-70b", "phase": "decode", "gpu": "h100-sxm-80gb", "system": "dgx-h100", "tp": 8},
    "llama3_70b_prefill_h100_tp8": {"model": "llama-3-70b", "phase": "prefill", "gpu": "h100-sxm-80gb", "system": "dgx-h100", "tp": 8},
}
NOMINAL = {"decode": (8, 2048), "prefill": (1, 2048)}  # (batch, context or prompt tokens)
WARMUP = {"decode": (48, 512), "prefill": (1, 1000)}  # outside every design_points / sweep_grid set
SWEEP = {"model": "llama-3-70b", "gpu": "h100-sxm-80gb", "system": "dgx-h100", "tp": 8}


def design_points(phase: str, n: int, offset: int = 0) -> list[tuple[int, int]]:
    """n distinct (batch, tokens) points; ``offset`` (round * n) keeps later rounds distinct.

    decode: batch 1..32 in turn at a context of 2048 (+1 every 32 points);
    prefill: batch 1, prompts of 512, 1024, ..., 3584 tokens in turn (+1 every 7 points).
    """
    idx = range(offset, offset + n)
    if phase == "decode":
        return [(1 + i % 32, 2048 + i // 32) for i in idx]
    return [(1, 512 * (1 + i % 7) + i // 7) for i in idx]


def sweep_grid(round_: int = 0) -> list[tuple[int, int]]:
    """Decode grid: batch 1..32 x context 256..8192 (192 points), contexts less ``round_``."""
    return [(b, c - round_) for c in (256, 512, 1024, 2048, 4096, 8192) for b in range(1, 33)]


def time_points(call, points, warmup) -> float:
    """Median wall seconds of ``call(batch, tokens)`` over ``points``, after one warm-up call."""
    call(*warmup)
    samples = []
    for b, t in points:
        t0 = time.perf_counter()
        call(b, t)
        samples.append(time.perf_counter() - t0)
    return statistics.median(samples)


def cpu_rate(call, grid) -> float:
    """Design points per CPU second of a plain loop over ``grid``."""
    t0 = time.process_time()
    for b, c in grid:
        call(b, c)
    return len(grid) / (time.process_time() - t0)


# --- llm-analysis 0.2.2 ------------------------------------------------------------------------

def llm_analysis_callers():
    """case-config -> call(batch, tokens) returning the predicted step latency in seconds."""
    import logging

    from llm_analysis.analysis import LLMAnalysis
    from llm_analysis.config import (
        DtypeConfig,
        GPUConfig,
        ModelConfig,
        ParallelismConfig,
    )
    from llm_analysis.logger import logger

    logger.setLevel(logging.ERROR)  # it logs every intermediate figure at INFO otherwise

    def make(cfg):
        m, g = MODELS[cfg["model"]], GPUS[cfg["gpu"]]
        # Its MLP has two matrices; 1.5x the intermediate size gives SwiGLU's three matrices' weights.
        # expansion_ratio given explicitly: otherwise it asserts ffn_embed_dim % hidden_dim == 0.
        ffn = 3 * m["intermediate"] // 2
        model = ModelConfig(name=cfg["model"], num_layers=m["layers"], n_head=m["heads"], hidden_dim=m["hidden"],
                            vocab_size=m["vocab"], num_key_value_heads=m["kv_heads"], ffn_embed_dim=ffn,
                            expansion_ratio=ffn / m["hidden"], model_type="llama")
        gpu = GPUConfig(name=cfg["gpu"], mem_per_GPU_in_GB=g["mem_gb"], hbm_bandwidth_in_GB_per_sec=g["hbm_gbs"],
                        intra_node_bandwidth_in_GB_per_sec=g["nvlink_gbs"], intra_node_min_message_latency=8e-6,
                        peak_fp16_TFLOPS=g["tflops"])
        la = LLMAnalysis(model, gpu, DtypeConfig(), ParallelismConfig(tp_size=cfg["tp"]))
        # inference() always models the prefill of seq_len tokens and then decode steps.
        key = "decode_latency" if cfg.get("phase", "decode") == "decode" else "prefill_latency"
        return lambda b, t: la.inference(batch_size_per_gpu=b, seq_len=t, num_tokens_to_generate=1)[key]

    return make


# --- GenZ (genz-llm 0.0.16, module GenZ) -------------------------------------------------------

def genz_callers():
    from GenZ import (
        ModelConfig,
        decode_moddeling,
        get_inference_system,
        prefill_moddeling,
    )

    def make(cfg):
        m, g = MODELS[cfg["model"]], GPUS[cfg["gpu"]]
        model = ModelConfig(model=cfg["model"], hidden_size=m["hidden"], num_attention_heads=m["heads"],
                            num_key_value_heads=m["kv_heads"], num_ffi=2,  # num_ffi=2: gated (SwiGLU) MLP
                            intermediate_size=m["intermediate"], num_decoder_layers=m["layers"],
                            vocab_size=m["vocab"], hidden_act="silu")
        system = get_inference_system({"Flops": g["tflops"], "Memory_size": g["mem_gb"], "Memory_BW": g["hbm_gbs"],
                                       "ICN": g["nvlink_gbs"], "real_values": True},
                                      parallelism_heirarchy=f"TP{{{cfg['tp']}}}_EP{{1}}_PP{{1}}")
        tp = cfg["tp"]
        if cfg.get("phase", "decode") == "decode":
            # Bb is the beam width (default 4, which would model 4x the batch).
            def call(b, t):
                return decode_moddeling(model=model, batch_size=b, input_tokens=t, output_tokens=0, Bb=1,
                                        system_name=system, tensor_parallel=tp)["Latency"] / 1e3
        else:
            def call(b, t):
                return prefill_moddeling(model=model, batch_size=b, input_tokens=t, system_name=system,
                                         tensor_parallel=tp)["Latency"] / 1e3
        return call  # results are dict keys: attribute access (out.Latency) reads a class default of 0

    return make


GENZ_CSV_DIR = "/tmp/genz/data/model"  # GenZ writes each built model there as a CSV and reads it back

TOOLS = {"llm-analysis": (llm_analysis_callers, "llm-analysis"), "GenZ": (genz_callers, "genz-llm")}


def error(e: Exception) -> str:
    """'Type: first line of the message (file:line of the raise)'."""
    where = traceback.extract_tb(e.__traceback__)[-1] if e.__traceback__ else None
    msg = f"{type(e).__name__}: {str(e).strip().splitlines()[0] if str(e).strip() else ''}"
    return msg + (f" ({os.path.basename(where.filename)}:{where.lineno})" if where else "")


def run_tool(tool: str, cases: list[str], points: int, offset: int, sweep: bool) -> None:
    factory, dist = TOOLS[tool]

    def emit(case, **fields):
        print(json.dumps({"tool": tool, "case": case, **fields}), flush=True)

    try:
        from importlib.metadata import version

        make, ver = factory(), version(dist)
    except Exception as e:  # noqa: BLE001 (not installed): one error line per case
        for case in cases + (["sweep"] if sweep else []):
            emit(case, error=error(e))
        return
    for case in cases:
        cfg = CASES[case]
        try:
            call = make(cfg)
            per = time_points(call, design_points(cfg["phase"], points, offset), WARMUP[cfg["phase"]])
            emit(case, per_point_s=per, points=points, latency_ms=1e3 * call(*NOMINAL[cfg["phase"]]), version=ver)
        except Exception as e:  # noqa: BLE001 (any failure becomes an error line)
            emit(case, error=error(e))
    if sweep:
        try:
            call, grid = make(SWEEP), sweep_grid(offset // max(points, 1))
            call(*WARMUP["decode"])
            rate = cpu_rate(call, grid)
            emit("sweep", per_point_s=1 / rate, points_per_cpu_s=rate, points=len(grid), version=ver)
        except Exception as e:  # noqa: BLE001 (any failure becomes an error line)
            emit("sweep", error=error(e))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--rounds", type=int, default=1, help="repeat everything; each round its own design points")
    ap.add_argument("--points", type=int, default=20, help="timed design points per (tool, case)")
    ap.add_argument("--offset", type=int, default=0, help="index of the first design point (compare.py: round * points)")
    ap.add_argument("--tools", default="llm-analysis,GenZ")
    ap.add_argument("--cases", default=",".join(CASES))
    ap.add_argument("--sweep-tools", default="llm-analysis", help="tools that also run the sweep case")
    args = ap.parse_args()
    warnings.simplefilter("ignore")
    csv_before = set(os.listdir(GENZ_CSV_DIR)) if os.path.isdir(GENZ_CSV_DIR) else set()
    try:
        for r in range(args.rounds):
            for tool in args.tools.split(","):
                run_tool(tool, args.cases.split(","), args.points, args.offset + r * args.points,
                         tool in args.sweep_tools.split(","))
    finally:  # remove only the CSV files this run made
        if os.path.isdir(GENZ_CSV_DIR):
            for f in set(os.listdir(GENZ_CSV_DIR)) - csv_before:
                os.remove(os.path.join(GENZ_CSV_DIR, f))


if __name__ == "__main__":
    main()
