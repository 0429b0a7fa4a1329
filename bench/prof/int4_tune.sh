# INT4 decode: llmk's split choice against more splits, and a 15 KB ring per
# warp (3 CTAs per SM) against the default 24 KB (build-r15: LLMK_ATTN_RING_BYTES=15232).
for g in 128 32; do
  for sp in 0 5 6 8 12; do
    ./build/llmk bench attention --shapes 8:32768,1:131072 --format int4 --group $g --splits $sp --check 0 2>&1 | tail -2 | sed "s/^/splits=$sp /"
  done
  ./build-r15/llmk bench attention --shapes 8:32768,1:131072,32:8192 --format int4 --group $g --check 0 2>&1 | tail -3 | sed "s/^/ring15 /"
  ./build/llmk bench attention --shapes 32:8192 --format int4 --group $g --check 0 2>&1 | tail -1 | sed "s/^/ring24 /"
done
