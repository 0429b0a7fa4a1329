# Decode GEMMs under ncu: llmk's own swapped tiles at several K splits and
# FBGEMM's f8f8bf16_rowwise on the same shapes (M = 16), one kernel each:
# duration, grid and cluster, DRAM throughput, and for FBGEMM the kernel it
# picked (its name carries the tile). Run from the repository root on the
# GPU machine after `make all`, FBGEMM's wheel installed in $FBSITE; writes to $OUT.
OUT=${OUT:-/tmp/llmk-out}
NCU=/usr/local/cuda/bin/ncu
metrics=gpu__time_duration.sum,dram__bytes_read.sum,dram__throughput.avg.pct_of_peak_sustained_elapsed,launch__grid_size,launch__cluster_dim_x,launch__block_size
shapes="16:2304:16384 16:3072:5120 1:1280:8192"
for s in $shapes; do
  IFS=: read -r m n k <<EOF
$s
EOF
  for cs in swap_128x16_s11:0 swap_128x16_s11:4 swap_64x16_s16:2 swap_64x16_s16:3 swap_64x16_s16:1; do
    cfg=${cs%%:*} sp=${cs##*:}
    [ "$sp" = 0 ] && sp=""
    LLMK_GEMM_OWN_CFG=$cfg LLMK_GEMM_SPLITS=$sp timeout 60 $NCU --kernel-name regex:llmk_gemm --launch-skip 8 \
      --launch-count 1 --metrics $metrics ./build/llmk bench gemm --m "$m" --n "$n" --k "$k" --backend own --reps 10 \
      --peak 1000 --check-rows 0 > /tmp/ncu_one.txt 2>&1
    echo "llmk $m x $n x $k $cfg k${sp:-rule}: $(grep -E 'gpu__time_duration.sum|dram__throughput|launch__grid_size|launch__cluster_dim_x' /tmp/ncu_one.txt | awk '{print $1 "=" $NF}' | tr '\n' ' ')"
  done
done
cat > /tmp/fbgemm_decode.py <<'PY'
import sys, torch
import fbgemm_gpu.experimental.gen_ai  # noqa: F401
for spec in sys.argv[1:]:
    m, n, k = (int(v) for v in spec.split(":"))
    x = torch.randn(m, k, device="cuda").to(torch.float8_e4m3fn)
    w = torch.randn(n, k, device="cuda").to(torch.float8_e4m3fn)
    xs = torch.ones(m, device="cuda")
    ws = torch.ones(n, device="cuda")
    for _ in range(3):
        torch.ops.fbgemm.f8f8bf16_rowwise(x, w, xs, ws, use_fast_accum=True)
    torch.cuda.synchronize()
    torch.cuda.nvtx.range_push("fb_%s" % spec.replace(":", "x"))
    torch.ops.fbgemm.f8f8bf16_rowwise(x, w, xs, ws, use_fast_accum=True)
    torch.cuda.synchronize()
    torch.cuda.nvtx.range_pop()
PY
PYTHONPATH=${FBSITE:-.site}:python timeout 120 $NCU --nvtx --nvtx-include "regex:fb_.*/" --metrics $metrics \
  python3 /tmp/fbgemm_decode.py $shapes > "$OUT/ncu_fbgemm_decode.txt" 2>&1
grep -E "^  [a-zA-Z_].*\(|gpu__time_duration.sum|dram__throughput|launch__grid_size|launch__cluster_dim_x|launch__block_size" \
  "$OUT/ncu_fbgemm_decode.txt" | sed 's/^ *//' | cut -c1-160
