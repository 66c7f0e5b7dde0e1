#!/usr/bin/env bash
# One device call on a lent H200 (benchmarks/silicon/README.md): kernel rows, whole-model
# serving and training rows, and two profiler traces, all under $OUT.
source benchmarks/silicon/setup.sh
A="python3 -m accelsim.cli"
{
log start; nvidia-smi --query-gpu=name,driver_version,clocks.sm,clocks.mem,power.draw,power.limit,temperature.gpu --format=csv
log kernels;  timeout 170 $A bench --device cuda -o $OUT/h200_kernels.csv --attention $OUT/h200_attention.csv
log llama3;   timeout 150 $A bench-model llama-3-8b -o $OUT/h200_llama3_8b.csv \
  --points prefill:1x128,prefill:1x512,prefill:1x2048,prefill:1x8192,prefill:4x2048,prefill:16x512,decode:1x128,decode:1x2048,decode:1x8192,decode:8x1024,decode:32x1024,decode:64x2048,decode:128x1024,decode:256x512
log llama2;   timeout 90 $A bench-model llama-2-7b -o $OUT/h200_llama2_7b.csv \
  --points prefill:1x512,prefill:1x2048,prefill:8x512,decode:1x1024,decode:16x1024,decode:64x1024
log gpt3;     timeout 120 $A bench-model gpt3-5b -o $OUT/h200_gpt3_5b_train.csv --points train:1x2048,train:2x2048,train:4x2048
log trace;    timeout 60 python3 benchmarks/silicon/trace_steps.py llama-3-8b $OUT
log end; nvidia-smi --query-gpu=clocks.sm,clocks.mem,power.draw,temperature.gpu --format=csv
} 2>&1 | tee $OUT/h200_log.txt
