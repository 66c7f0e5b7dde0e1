#!/usr/bin/env bash
# Third device call on a lent H200: where a whole prefill's and a training step's device time
# goes (profiler traces), and whether the clock holds over seconds of back-to-back prefill.
source benchmarks/silicon/setup.sh
nvidia-smi --query-gpu=timestamp,clocks.sm,clocks.mem,power.draw,temperature.gpu,utilization.gpu --format=csv -lms 250 > $OUT/h200_clocks3.csv &
SMI=$!
{
log llama3; timeout 150 python3 benchmarks/silicon/trace_steps.py llama-3-8b $OUT --decode 64x2048 --prefill 1x2048 --sustain 8
log gpt3;   timeout 120 python3 benchmarks/silicon/trace_steps.py gpt3-5b $OUT --decode 1x128 --prefill 1x128 --train 1x2048
log end
} 2>&1 | tee $OUT/h200_run3_log.txt
kill $SMI
