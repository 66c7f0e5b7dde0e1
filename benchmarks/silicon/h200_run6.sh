#!/usr/bin/env bash
# Sixth device call on a lent H200: profiler traces of Hugging Face transformers' Llama-3-8B
# (one decode step at batch 1, context 1024; one 512-token prefill), to see where its step goes.
source benchmarks/silicon/setup.sh
{
log hf-trace; timeout 150 python3 benchmarks/silicon/hf_llama.py llama-3-8b $OUT/h200_hf_again.csv \
  --points prefill:1x512,decode:1x1024 --trace $OUT
log end
} 2>&1 | tee $OUT/h200_run6_log.txt
