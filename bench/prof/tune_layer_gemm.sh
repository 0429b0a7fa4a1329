#!/bin/bash
# Table entries (row-wise FP8, fast accumulation) for the unsharded Llama-3
# 8B and 70B layer weights that `python -m llmk.demo` and `llmk demo` run:
# qkv, o, gate/up (w13) and down, at decode and prefill M. Output: entries to
# append to src/cuda/gemm_table.inc, in $OUT/gemm_table_layer.inc.
set -u
OUT=${OUT:-/tmp/llmk-out}
[ -x build/llmk ] || make -j16 all > /tmp/b.log 2>&1 || { tail -30 /tmp/b.log; exit 1; }
shapes=""
for nk in 10240x8192 8192x8192 57344x8192 8192x28672 6144x4096 4096x4096 28672x4096 4096x14336; do
  for m in 1 16 32 64 128 1024 4096 16384; do shapes="$shapes${shapes:+,}${m}x$nk"; done
done
timeout 500 ./build/llmk tune gemm --scaling row --reps ${REPS:-10} --shapes "$shapes" > "$OUT/gemm_table_layer.inc" 2> "$OUT/tune_layer.err"
echo "tune rc=$?"; tail -3 "$OUT/tune_layer.err"; grep -c "^{" "$OUT/gemm_table_layer.inc"
