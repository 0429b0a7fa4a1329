#!/bin/bash
# INT4 with a smaller ring per warp so that 3 CTAs fit on an SM (12 warps to
# hide the loop's latency) against the default 24 KB (2 CTAs), same run.
# Variant builds get fresh objects and archives (the Makefile's .SECONDARY).
set -u
make -j16 build/llmk > /tmp/b0.log 2>&1 || { tail -20 /tmp/b0.log; exit 1; }
for r in 15232 17408; do
  rm -rf build-r$r; cp -r build build-r$r
  rm -f build-r$r/cuda/attention_decode_*.o build-r$r/libllmk.a build-r$r/llmk
  make -j16 BUILD=build-r$r NVCC_EXTRA=-DLLMK_ATTN_RING_BYTES=$r build-r$r/llmk > /tmp/b$r.log 2>&1 || { tail -20 /tmp/b$r.log; exit 1; }
done
for rep in 1 2; do
  for f in "int4 --group 128" "int4 --group 32"; do
    for bin in build build-r15232 build-r17408; do
      ./$bin/llmk bench attention --shapes 8:32768,32:8192,1:131072,1:8192 --format $f --check 0 2>&1 | tail -4 | sed "s/^/$bin /"
    done
  done
done
