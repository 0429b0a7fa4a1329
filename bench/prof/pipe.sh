./build/tests/test_attention_gpu 2>&1 | tail -1
for f in "bf16" "fp8" "int4 --group 32" "int4 --group 128" "bf16 --page-size 16"; do
  ./build/llmk bench attention --shapes 1:8192,8:32768,32:1024,32:8192,1:131072 --format $f 2>&1 | tail -5
done
