#!/bin/bash
# Decoder-layer and two-plane GEMM checks in order of importance, each step
# time-boxed so the whole run ends within 590 s (LLMK_BUDGET_S, default 570,
# bounds the optional steps): build; the two-plane and GEMM GPU tests; the
# decoder layer vs PyTorch (python -m llmk.demo, layer.jsonl); the two-plane
# decode GEMMs vs torch._scaled_mm (planes_gemm.py); pytest; compute-sanitizer
# on test_planes; the README install path; llmk demo.
set -u
OUT=${OUT:-/tmp/llmk-out}
commit=${LLMK_COMMIT:-unknown}
ROOT=$PWD
T0=$(date +%s)
left() { echo $((${LLMK_BUDGET_S:-570} - ($(date +%s) - T0))); }
make -j16 all > /tmp/b.log 2>&1 || { tail -30 /tmp/b.log; exit 1; }
echo "built at $(( $(date +%s) - T0 )) s"
for t in test_planes test_gemm_gpu; do
  LLMK_TEST_QUICK=1 timeout 90 ./build/tests/$t > "$OUT/$t.log" 2>&1; echo "$t rc=$?"
  grep FAIL "$OUT/$t.log" | head -5; tail -1 "$OUT/$t.log"
done
export LLMK_LIBRARY=$PWD/build/libllmk.so PYTHONPATH=$PWD/python PYTHONUNBUFFERED=1 LLMK_COMMIT=$commit
timeout 200 python3 -m llmk.demo --models 70b --json "$OUT/layer.jsonl" 2>&1 | tee "$OUT/layer.log"
timeout 80 python3 bench/prof/planes_gemm.py --commit "$commit" --shapes 70B.w13 70B.down 70B.qkv --m 16 \
  --json "$OUT/planes_gemm.jsonl" --sweep LLMK_GEMM_BACKEND=own LLMK_GEMM_OWN_CFG=9 LLMK_GEMM_OWN_CFG=8 2>&1 | tee "$OUT/planes_gemm.log"
echo "left $(left) s"
timeout 90 sh tests/run_python.sh build > "$OUT/pytest.log" 2>&1; echo "pytest rc=$?"; tail -2 "$OUT/pytest.log"
command -v compute-sanitizer > /dev/null && LLMK_TEST_QUICK=1 timeout 100 compute-sanitizer --tool memcheck ./build/tests/test_planes 2>&1 | tail -3
echo "left $(left) s"
pip install -q --no-build-isolation --target /tmp/llmkpy ./python > /tmp/pip.log 2>&1; echo "pip rc=$?"
(cd /tmp && LLMK_LIBRARY= PYTHONPATH=/tmp/llmkpy timeout 60 python3 -c "import torch, llmk; x = torch.randn(16, 8192, device='cuda', dtype=torch.bfloat16); w = torch.randn(1024, 8192, device='cuda', dtype=torch.bfloat16); xq, xs = llmk.quantize_fp8_per_row(x); wq, ws = llmk.quantize_fp8_per_row(w); print(llmk.library_path, llmk.f8f8bf16_rowwise(xq, wq, xs, ws).shape)")
l=$(left); [ "$l" -gt 60 ] && { timeout $l ./build/llmk demo > "$OUT/demo.log" 2>&1; echo "llmk demo rc=$?"; tail -12 "$OUT/demo.log"; }
