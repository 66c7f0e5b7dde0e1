#!/usr/bin/env bash
# Second device call on a lent H200: host dispatch against device time for eager steps, FP8
# GEMMs, and a model no row of the first call measured (Llama-2-13B), all under $OUT.
source benchmarks/silicon/setup.sh
A="python3 -m accelsim.cli"
nvidia-smi --query-gpu=timestamp,clocks.sm,clocks.mem,power.draw,utilization.gpu --format=csv -lms 500 > $OUT/h200_clocks.csv &
SMI=$!
{
log overlap; timeout 150 python3 benchmarks/silicon/host_overlap.py llama-3-8b $OUT/h200_host_overlap.json
log fp8;     timeout 90 $A bench --device cuda --dtype fp8 -o $OUT/h200_fp8_gemm.csv
log llama2-13b; timeout 120 $A bench-model llama-2-13b -o $OUT/h200_llama2_13b.csv \
  --points prefill:1x512,prefill:1x2048,prefill:4x1024,decode:1x1024,decode:16x1024,decode:64x1024,decode:128x512
log end
} 2>&1 | tee $OUT/h200_run2_log.txt
kill $SMI
