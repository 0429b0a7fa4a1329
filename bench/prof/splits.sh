# The KV split rule: llmk's choice (--splits 0) against one CTA per SM
# (B=1: 16 splits, B=8: 2), per format, same run.
for f in "bf16" "fp8" "int4 --group 32" "int4 --group 128"; do
  echo "== $f"
  ./build/llmk bench attention --shapes 1:1024,1:8192,1:32768,1:131072,8:1024,8:8192,8:32768 --format $f --check 0 2>&1 | tail -7 | sed "s/^/auto /"
  ./build/llmk bench attention --shapes 1:1024,1:8192,1:32768,1:131072 --format $f --splits 16 --check 0 2>&1 | tail -4 | sed "s/^/s16  /"
  ./build/llmk bench attention --shapes 8:1024,8:8192,8:32768 --format $f --splits 2 --check 0 2>&1 | tail -3 | sed "s/^/s2   /"
done
