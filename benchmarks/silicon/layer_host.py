"""Host time of one eager step per decoder layer, as a part: tiny Llama-shaped models (so every
step is host-bound) of 2 and 10 layers, built by ``accelsim.bench.model`` (plain PyTorch
modules) and by Hugging Face transformers (``LlamaForCausalLM``), timed as the host's dispatch of
a decode step and of a 32-token prefill (the device idle at the start; no waiting inside), and
the kernels each step launches. Per layer: (t10 - t2) / 8; the rest of the step: t2 - 2 x that.

    python benchmarks/silicon/layer_host.py OUT.json
"""

from __future__ import annotations

import json
import statistics
import sys
import time

import torch
from torch.profiler import ProfilerActivity, profile

from accelsim.bench.model import build_model, kv_cache

TINY = {"name": "tiny-llama", "family": "decoder", "hidden_size": 256, "intermediate_size": 512,
        "num_attention_heads": 4, "num_key_value_heads": 2, "head_dim": 64, "num_hidden_layers": 2,
        "vocab_size": 512, "max_position_embeddings": 4096, "activation": "silu", "gated_mlp": True,
        "norm": "rmsnorm", "tied_embeddings": False, "position_embedding": "rope"}


def host(fn, repeats: int = 30) -> float:
    for _ in range(5):
        fn()
    out = []
    for _ in range(repeats):
        torch.cuda.synchronize()
        t0 = time.perf_counter()
        fn()
        out.append(time.perf_counter() - t0)
    torch.cuda.synchronize()
    return statistics.median(out)


def kernels(fn) -> int:
    with profile(activities=[ProfilerActivity.CUDA]) as prof:
        fn()
        torch.cuda.synchronize()
    return sum(1 for e in prof.events() if e.device_type == torch.autograd.DeviceType.CUDA)


def steps_plain(layers: int):
    m = build_model(TINY, "cuda", torch.bfloat16, layers=layers).eval()
    cache = kv_cache(TINY, 1, 129, "cuda", torch.bfloat16, layers=layers)
    tok1 = torch.randint(0, 512, (1, 1), device="cuda")
    tok32 = torch.randint(0, 512, (1, 32), device="cuda")
    cache32 = kv_cache(TINY, 1, 32, "cuda", torch.bfloat16, layers=layers)
    return {"decode": lambda: m(tok1, cache, 128).argmax(-1), "prefill": lambda: m(tok32, cache32, 0).argmax(-1)}


def steps_hf(layers: int):
    from transformers import DynamicCache, LlamaConfig, LlamaForCausalLM

    cfg = LlamaConfig(hidden_size=256, intermediate_size=512, num_attention_heads=4, num_key_value_heads=2,
                      head_dim=64, num_hidden_layers=layers, vocab_size=512, max_position_embeddings=4096,
                      tie_word_embeddings=False)
    cfg._attn_implementation = "sdpa"
    torch.set_default_dtype(torch.bfloat16)
    with torch.device("cuda"):
        m = LlamaForCausalLM(cfg).eval()
    torch.set_default_dtype(torch.float32)
    ids = torch.randint(0, 512, (1, 128), device="cuda")
    cache = DynamicCache(config=cfg)
    m(input_ids=ids, past_key_values=cache, use_cache=True, logits_to_keep=1)
    nxt = torch.randint(0, 512, (1, 1), device="cuda")
    pos = torch.full((1, 1), 128, device="cuda")
    tok32 = torch.randint(0, 512, (1, 32), device="cuda")

    def decode():
        out = m(input_ids=nxt, past_key_values=cache, position_ids=pos, use_cache=True).logits.argmax(-1)
        cache.crop(-1)
        return out

    return {"decode": decode,
            "prefill": lambda: m(input_ids=tok32, use_cache=True, logits_to_keep=1).logits.argmax(-1)}


def main() -> None:
    res = {"torch": torch.__version__, "device": torch.cuda.get_device_name(0)}
    with torch.inference_mode():
        for impl, make in (("plain", steps_plain), ("hf", steps_hf)):
            t, k = {}, {}
            for layers in (2, 10):
                fns = make(layers)
                for phase, fn in fns.items():
                    t[(phase, layers)] = host(fn)
                    k[(phase, layers)] = kernels(fn)
            for phase in ("decode", "prefill"):
                per = (t[(phase, 10)] - t[(phase, 2)]) / 8
                kl = (k[(phase, 10)] - k[(phase, 2)]) / 8
                res[f"{impl}_{phase}"] = {"host_s_2_layers": t[(phase, 2)], "host_s_10_layers": t[(phase, 10)],
                                          "host_s_per_layer": per, "host_s_rest": t[(phase, 2)] - 2 * per,
                                          "kernels_per_layer": kl, "kernels_rest": k[(phase, 2)] - 2 * kl,
                                          "host_s_per_kernel_in_layer": per / kl if kl else None}
                print(impl, phase, json.dumps(res[f"{impl}_{phase}"]), flush=True)
    json.dump(res, open(sys.argv[1], "w"), indent=1)


if __name__ == "__main__":
    main()
