"""Parts of a Hugging Face transformers eager step that the `hf-transformers` stacks do not pin yet,
measured on one GPU (writes one JSON file):

- ``depth``: host time of one decode forward (the host's dispatch, not waiting for the device) of
  the library's Llama at a real model's widths with 2 and 8 layers: host per layer at that width
  (the tiny-model part, ``notes/h200_layer_host.json``, gave 0.596 ms; Llama-3-8B's whole step
  implies ~1.2 ms) and the kernels per layer;
- ``generate``: one ``generate()`` of N new tokens against N single-token forwards on the same
  cache: what the library's generation loop adds per token;
- ``attention``: a device-bound decode step with ``attn_implementation`` "sdpa" and "eager";
- ``bmm``: ``torch.matmul`` of (B*H, 1, D) by (B*H, D, L) and back, as eager decode attention
  runs it: achieved bytes per second against B*H and L.

    python benchmarks/silicon/hf_probe.py OUT.json [--model llama-3-8b] [--device cuda] [--small]

``--small`` shrinks every shape (a CPU smoke test of the script, no figure to keep).
"""

from __future__ import annotations

import argparse
import json
import statistics
import time

import torch


def _median(fn, repeats: int, sync, host_only: bool = False) -> float:
    for _ in range(3):
        fn()
    out = []
    for _ in range(repeats):
        sync()
        t0 = time.perf_counter()
        fn()
        if not host_only:
            sync()
        out.append(time.perf_counter() - t0)
    sync()
    return statistics.median(out)


def _config(spec: dict, layers: int, attn: str = "sdpa"):
    from transformers import LlamaConfig

    cfg = LlamaConfig(hidden_size=spec["hidden_size"], intermediate_size=spec["intermediate_size"],
                      num_attention_heads=spec["num_attention_heads"],
                      num_key_value_heads=spec.get("num_key_value_heads") or spec["num_attention_heads"],
                      head_dim=spec["head_dim"], num_hidden_layers=layers, vocab_size=spec["vocab_size"],
                      max_position_embeddings=32768, tie_word_embeddings=False)
    cfg._attn_implementation = attn
    return cfg


def _model(cfg, device, dtype):
    from transformers import LlamaForCausalLM

    torch.manual_seed(0)
    torch.set_default_dtype(dtype)
    with torch.device(device):
        m = LlamaForCausalLM(cfg).eval()
    torch.set_default_dtype(torch.float32)
    return m


def _decode_step(m, cfg, batch: int, context: int, device: str):
    """A decode forward against a DynamicCache of ``context`` tokens (cropped back after each call)."""
    from transformers import DynamicCache

    cache = DynamicCache(config=cfg)
    ids = torch.randint(0, cfg.vocab_size, (batch, context), device=device)
    m(input_ids=ids, past_key_values=cache, use_cache=True, logits_to_keep=1)
    nxt = torch.randint(0, cfg.vocab_size, (batch, 1), device=device)
    pos = torch.full((batch, 1), context, device=device)

    def step():
        out = m(input_ids=nxt, past_key_values=cache, position_ids=pos, use_cache=True).logits.argmax(-1)
        cache.crop(-1)
        return out
    return step


def _kernels(fn, device: str) -> int:
    from torch.profiler import ProfilerActivity, profile

    acts = [ProfilerActivity.CUDA] if device == "cuda" else [ProfilerActivity.CPU]
    with profile(activities=acts) as prof:
        fn()
    kind = torch.autograd.DeviceType.CUDA if device == "cuda" else torch.autograd.DeviceType.CPU
    return sum(1 for e in prof.events() if e.device_type == kind)


def depth(spec, device, dtype, sync, small) -> dict:
    out = {}
    for layers in (2, 8):
        cfg = _config(spec, layers)
        m = _model(cfg, device, dtype)
        step = _decode_step(m, cfg, 1, 64 if small else 1024, device)
        out[layers] = (_median(step, 5 if small else 30, sync, host_only=True), _kernels(step, device))
        del m, step
    per = (out[8][0] - out[2][0]) / 6
    return {"host_s_2_layers": out[2][0], "host_s_8_layers": out[8][0], "host_s_per_layer": per,
            "kernels_per_layer": (out[8][1] - out[2][1]) / 6,
            "host_s_per_kernel": per / max(1e-9, (out[8][1] - out[2][1]) / 6)}


def generate(spec, device, dtype, sync, small) -> dict:
    from transformers import DynamicCache

    layers, n, prompt = (2, 8, 16) if small else (8, 64, 64)
    cfg = _config(spec, layers)
    m = _model(cfg, device, dtype)
    ids = torch.randint(0, cfg.vocab_size, (1, prompt), device=device)
    gen = _median(lambda: m.generate(ids, max_new_tokens=n, min_new_tokens=n, do_sample=False), 3 if small else 10,
                  sync)

    def loop():
        cache = DynamicCache(config=cfg)
        tok = m(input_ids=ids, past_key_values=cache, use_cache=True, logits_to_keep=1).logits.argmax(-1)
        for _ in range(n - 1):
            tok = m(input_ids=tok, past_key_values=cache, use_cache=True).logits.argmax(-1)
        return tok
    fwd = _median(loop, 3 if small else 10, sync)
    return {"layers": layers, "new_tokens": n, "generate_s": gen, "forward_loop_s": fwd,
            "generate_extra_s_per_token": (gen - fwd) / n}


def attention(spec, device, dtype, sync, small) -> dict:
    layers, batch, ctx = (2, 2, 64) if small else (4, 64, 1024)
    res = {"layers": layers, "batch": batch, "context": ctx}
    for attn in ("sdpa", "eager"):
        cfg = _config(spec, layers, attn)
        m = _model(cfg, device, dtype)
        res[f"{attn}_step_s"] = _median(_decode_step(m, cfg, batch, ctx, device), 5 if small else 20, sync)
        del m
    return res


def bmm(device, dtype, sync, small) -> list[dict]:
    rows = []
    shapes = [(64, 256), (512, 512)] if small else [(bh, L) for bh in (16, 256, 2048) for L in (512, 4096, 32768)
                                                   if bh * L <= 2048 * 4096]
    d = 128
    for bh, L in shapes:
        q = torch.randn(bh, 1, d, device=device, dtype=dtype)
        k = torch.randn(bh, L, d, device=device, dtype=dtype)
        v = torch.randn(bh, L, d, device=device, dtype=dtype)
        score = _median(lambda: torch.matmul(q, k.transpose(1, 2)), 5 if small else 50, sync)
        p = torch.matmul(q, k.transpose(1, 2))
        ctx = _median(lambda: torch.matmul(p, v), 5 if small else 50, sync)
        nbytes = bh * L * d * k.element_size()
        rows.append({"bh": bh, "L": L, "d": d, "score_s": score, "context_s": ctx,
                     "score_Bps": nbytes / score, "context_Bps": nbytes / ctx})
    return rows


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("out")
    ap.add_argument("--model", default="llama-3-8b")
    ap.add_argument("--device", default="cuda")
    ap.add_argument("--small", action="store_true")
    a = ap.parse_args()
    import transformers

    from accelsim.workload.loaders import load_model

    spec = load_model(a.model).model_dump()
    if a.small:
        spec.update(hidden_size=128, intermediate_size=256, num_attention_heads=4, num_key_value_heads=2,
                    head_dim=32, vocab_size=512)
    dtype = torch.bfloat16 if a.device == "cuda" else torch.float32
    sync = torch.cuda.synchronize if a.device == "cuda" else (lambda: None)
    res = {"torch": torch.__version__, "transformers": transformers.__version__, "model": a.model,
           "device": torch.cuda.get_device_name(0) if a.device == "cuda" else "cpu", "small": a.small}
    with torch.inference_mode():
        for name, fn in (("depth", lambda: depth(spec, a.device, dtype, sync, a.small)),
                         ("generate", lambda: generate(spec, a.device, dtype, sync, a.small)),
                         ("attention", lambda: attention(spec, a.device, dtype, sync, a.small)),
                         ("bmm", lambda: bmm(a.device, dtype, sync, a.small))):
            res[name] = fn()
            print(name, json.dumps(res[name]), flush=True)
    with open(a.out, "w") as f:
        json.dump(res, f, indent=1)


if __name__ == "__main__":
    main()
