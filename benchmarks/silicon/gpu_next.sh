#!/usr/bin/env bash
# Prepared for the next lent GPU (not yet run): the parts of a Hugging Face transformers eager step
# that the hf-transformers stacks leave open (hf_probe.py: host per layer at Llama-3-8B width,
# generate()'s per-token loop, eager against SDPA attention at batch 64, torch.matmul at M = 1), and
# whether a tensor-bound GEMM loop held for a minute keeps the rate of a short microbenchmark
# (sustained.py: SM clock, power and TFLOP/s each second).
source benchmarks/silicon/setup.sh
{
log sustained; timeout 100 python3 benchmarks/silicon/sustained.py $OUT/sustained_bf16.json --seconds 60
log probe; timeout 400 python3 benchmarks/silicon/hf_probe.py $OUT/hf_probe.json --model llama-3-8b
log end
} 2>&1 | tee $OUT/gpu_next_log.txt
