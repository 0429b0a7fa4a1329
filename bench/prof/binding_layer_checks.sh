#!/bin/bash
# Checks of the PyTorch binding and the decoder layer on the GPU: build, the
# GPU tests of the ops the binding and the layer use, pytest of python/tests
# on CUDA tensors, python -m llmk.demo (decoder layer, FP8 llmk vs PyTorch
# BF16, same run), the two-plane decode GEMMs against torch._scaled_mm
# (planes_gemm.py), the README's install-and-call path and llmk demo.
# Results under $OUT.
set -u
OUT=${OUT:-/tmp/llmk-out}
commit=${LLMK_COMMIT:-unknown}
ROOT=$PWD
make -j16 all > /tmp/b.log 2>&1 || { tail -30 /tmp/b.log; exit 1; }
for t in test_planes test_gemm_gpu test_norm_gpu test_attention_gpu; do
  LLMK_TEST_QUICK=1 ./build/tests/$t > "$OUT/$t.log" 2>&1; grep FAIL "$OUT/$t.log" | head -5; tail -1 "$OUT/$t.log" | sed "s/^/$t: /"
done
command -v compute-sanitizer > /dev/null && compute-sanitizer --tool memcheck ./build/tests/test_planes 2>&1 | tail -3
LLMK_COMMIT=$commit sh tests/run_python.sh build > "$OUT/pytest.log" 2>&1; echo "pytest rc=$?"; tail -2 "$OUT/pytest.log"
LLMK_COMMIT=$commit LLMK_LIBRARY=$PWD/build/libllmk.so PYTHONPATH=$PWD/python PYTHONUNBUFFERED=1 \
  timeout 300 python3 -m llmk.demo --json "$OUT/layer.jsonl" 2>&1 | tee "$OUT/layer.log"
LLMK_LIBRARY=$PWD/build/libllmk.so PYTHONPATH=$PWD/python PYTHONUNBUFFERED=1 \
  timeout 200 python3 bench/prof/planes_gemm.py --commit "$commit" --json "$OUT/planes_gemm.jsonl" 2>&1 | tee "$OUT/planes_gemm.log"
LLMK_LIBRARY=$PWD/build/libllmk.so PYTHONPATH=$PWD/python PYTHONUNBUFFERED=1 timeout 120 python3 bench/prof/planes_gemm.py \
  --commit "$commit" --shapes 70B.w13 --m 16 --json "$OUT/planes_gemm.jsonl" --sweep LLMK_GEMM_BACKEND=own \
  LLMK_GEMM_SPLITS=2 LLMK_GEMM_OWN_CFG=22 LLMK_GEMM_OWN_CFG=9 LLMK_GEMM_OWN_CFG=8 2>&1 | tee -a "$OUT/planes_gemm.log"
pip install -q --no-build-isolation --target /tmp/llmkpy ./python > /tmp/pip.log 2>&1; echo "pip rc=$?"; tail -2 /tmp/pip.log
cd /tmp && PYTHONPATH=/tmp/llmkpy python3 -c "import torch, llmk; x = torch.randn(16, 8192, device='cuda', dtype=torch.bfloat16); w = torch.randn(1024, 8192, device='cuda', dtype=torch.bfloat16); xq, xs = llmk.quantize_fp8_per_row(x); wq, ws = llmk.quantize_fp8_per_row(w); print(llmk.library_path, llmk.f8f8bf16_rowwise(xq, wq, xs, ws).shape)"
cd "$ROOT"
timeout 400 ./build/llmk demo > "$OUT/demo.log" 2>&1; echo "llmk demo rc=$?"; tail -25 "$OUT/demo.log"
