#!/bin/bash
# Does the copy pattern's row size bound the INT4/FP8 decode? The copy-only lab
# build (LLMK_ATTN_LAB=4: tiles streamed through the rings, no compute) at
# equal bytes with Hkv = 8 (64-byte INT4 g128 rows 512 bytes apart), 4, 2, 1
# (rows contiguous), against the full kernel.
set -u
make -j16 build/llmk > /tmp/b0.log 2>&1 || { tail -20 /tmp/b0.log; exit 1; }
v=4; rm -rf build-lab$v; cp -r build build-lab$v
rm -f build-lab$v/cuda/attention_decode_*.o build-lab$v/libllmk.a build-lab$v/llmk
make -j16 BUILD=build-lab$v NVCC_EXTRA=-DLLMK_ATTN_LAB=$v build-lab$v/llmk > /tmp/b$v.log 2>&1 || { tail -20 /tmp/b$v.log; exit 1; }
for f in "int4 --group 128" "int4 --group 32" "fp8"; do
  for hk in 8 4 2 1; do
    b=$((8 * 8 / hk))
    for bin in build build-lab4; do
      ./$bin/llmk bench attention --b $b --t 32768 --hkv $hk --hq $((hk * 8)) --format $f --check 0 2>&1 | tail -1 | sed "s/^/$bin hkv=$hk /"
    done
  done
done
