#!/bin/bash
# Floors of the decode kernel per format (lab builds, wrong outputs, same
# bytes): LLMK_ATTN_LAB=4 streams the tiles through the rings with no compute
# (the copy pattern's floor), =8 computes on whatever the rings hold and
# copies nothing (the compute floor); against the library build, same run.
# Variant builds get fresh objects and archives: the Makefile marks objects
# .SECONDARY, so a deleted object alone would rebuild nothing.
set -u
make -j16 build/llmk > /tmp/b0.log 2>&1 || { tail -20 /tmp/b0.log; exit 1; }
V=${LAB_VARIANTS:-4 8}
for v in $V; do
  rm -rf build-lab$v; cp -r build build-lab$v
  rm -f build-lab$v/cuda/attention_decode_*.o build-lab$v/libllmk.a build-lab$v/llmk
  make -j16 BUILD=build-lab$v NVCC_EXTRA=-DLLMK_ATTN_LAB=$v build-lab$v/llmk > /tmp/b$v.log 2>&1 || { tail -20 /tmp/b$v.log; exit 1; }
done
S=${LAB_SHAPES:-8:32768,32:8192,1:131072}
n=$(echo $S | tr , '\n' | wc -l)
for rep in 1 2; do
  for f in "int4 --group 128" "int4 --group 32" "fp8" "bf16"; do
    ./build/llmk bench attention --shapes $S --format $f --check 0 2>&1 | tail -$n | sed "s/^/base /"
    for v in $V; do
      ./build-lab$v/llmk bench attention --shapes $S --format $f --check 0 2>&1 | tail -$n | sed "s/^/lab$v /"
    done
  done
done
