#!/bin/bash
# One GPU call for issues 6 and 7: the binding / layer checks (binding.sh),
# then the all-reduce tests with ranks sharing this GPU (correctness only).
set -u
OUT=${OUT:-/tmp/llmk-out}
bash bench/prof/binding.sh
LLMK_TEST_QUICK=1 timeout 150 ./build/tests/test_allreduce > "$OUT/test_allreduce.log" 2>&1; echo "test_allreduce rc=$?"
grep FAIL "$OUT/test_allreduce.log" | head -8; tail -2 "$OUT/test_allreduce.log"
