# Paged (16) against contiguous caches, same shapes and run.
./build/tests/test_attention_gpu 2>&1 | tail -1
for f in "bf16" "fp8"; do
  for pg in 0 16; do
    ./build/llmk bench attention --shapes 1:8192,1:32768,8:8192,8:32768,32:8192 --format $f --page-size $pg 2>&1 | tail -5
  done
done
