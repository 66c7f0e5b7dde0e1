#!/usr/bin/env bash
# Fifth device call on a lent H200: host time per decoder layer of an eager step, plain PyTorch
# modules against Hugging Face transformers, as a part (benchmarks/silicon/layer_host.py).
source benchmarks/silicon/setup.sh
{
log layer-host; timeout 150 python3 benchmarks/silicon/layer_host.py $OUT/h200_layer_host.json
log end
} 2>&1 | tee $OUT/h200_run5_log.txt
