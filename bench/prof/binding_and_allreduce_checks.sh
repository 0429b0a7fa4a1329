#!/bin/bash
# The binding and decoder-layer checks (binding_layer_checks.sh), then the
# all-reduce tests with every rank sharing this one GPU (correctness only).
set -u
OUT=${OUT:-/tmp/llmk-out}
bash bench/prof/binding_layer_checks.sh
LLMK_TEST_QUICK=1 timeout 150 ./build/tests/test_allreduce > "$OUT/test_allreduce.log" 2>&1; echo "test_allreduce rc=$?"
grep FAIL "$OUT/test_allreduce.log" | head -8; tail -2 "$OUT/test_allreduce.log"
