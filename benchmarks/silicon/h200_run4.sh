#!/usr/bin/env bash
# Fourth device call on a lent H200: Hugging Face transformers' own Llama under eager PyTorch
# (held-out whole steps: a second implementation of models accelsim's rows used) and per-kernel
# launch and elementwise costs, all under $OUT.
source benchmarks/silicon/setup.sh
{
log launch; timeout 60 python3 benchmarks/silicon/launch_costs.py $OUT/h200_launch_costs.json
log hf-llama3; timeout 150 python3 benchmarks/silicon/hf_llama.py llama-3-8b $OUT/h200_hf_llama3_8b.csv \
  --points prefill:1x512,prefill:1x2048,prefill:4x1024,decode:1x1024,decode:8x1024,decode:64x1024
log hf-llama2; timeout 120 python3 benchmarks/silicon/hf_llama.py llama-2-7b $OUT/h200_hf_llama2_7b.csv \
  --points prefill:1x2048,decode:1x1024,decode:16x1024
log end
} 2>&1 | tee $OUT/h200_run4_log.txt
