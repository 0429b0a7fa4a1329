#!/bin/sh
# SM clock and power while the decode kernel runs (normal clocks), and ncu
# without clock control for the same shapes.
NCU=${NCU:-/usr/local/cuda/bin/ncu}
for f in "fp8" "int4 --group 32" "int4 --group 128" "bf16"; do
  nvidia-smi --query-gpu=clocks.sm,power.draw --format=csv,noheader -lms 50 > /tmp/smi.txt &
  smi=$!
  ./build/llmk bench attention --b 8 --t 32768 --format $f --check 0 --reps 400 --graph-calls 400 | tail -1
  kill $smi
  echo "  clocks/power during: $(sort /tmp/smi.txt | uniq -c | sort -rn | head -4 | tr -s ' ' | tr '\n' ';')"
  $NCU --clock-control none --kernel-name regex:decode_kernel --launch-skip 2 --launch-count 1 \
    --section SpeedOfLight --section WarpStateStats \
    ./build/llmk bench attention --b 8 --t 32768 --format $f --check 0 --reps 3 --graph-calls 1 2>&1 |
    grep -E "SM Frequency|Duration|DRAM Throughput|Compute \(SM\)" | tr -s ' ' | tr '\n' ';'
  echo
done
