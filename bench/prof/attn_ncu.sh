#!/bin/sh
# ncu of the decode-attention kernel at B=8 T=32768 (Llama-3-70B heads) for
# each format in $FORMATS: the full section set as text, and the SASS source
# page with stall samples as CSV (for docs/PERFORMANCE_LOG.md, Decode attention).
OUT=${OUT:-/tmp/llmk-out}
NCU=${NCU:-/usr/local/cuda/bin/ncu}
for f in ${FORMATS:-fp8 int4:32 int4:128 bf16}; do
  fmt=${f%%:*}; grp=""; case $f in *:*) grp="--group ${f#*:}" ;; esac
  tag=$(echo $f | tr ':' 'g')
  $NCU --kernel-name regex:decode_kernel --launch-skip 2 --launch-count 1 --set full \
    --import-source no -o /tmp/attn_$tag -f \
    ./build/llmk bench attention --b 8 --t 32768 --format $fmt $grp --check 0 --reps 3 --graph-calls 1 > /tmp/ncu_$tag.log 2>&1
  $NCU -i /tmp/attn_$tag.ncu-rep --page details --print-details all > "$OUT/ncu_$tag.txt" 2>&1
  $NCU -i /tmp/attn_$tag.ncu-rep --page source --print-source sass --csv > "$OUT/src_$tag.csv" 2>&1
  tail -1 /tmp/ncu_$tag.log
done
