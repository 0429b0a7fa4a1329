#!/bin/sh
# The cost model's fitter on a sweep whose truth is known: times predicted
# by the model itself under constants scaled 1.5x either way
# (fit_gemm_model --synthesize), on an H100's resident clusters. The fit
# must choose (nearly) as well as the truth: geometric mean of pick /
# fastest at most 1.02 on the fitted shapes and 1.05 in cross-validation,
# and better than the constants it started from. CUDA builds only (the
# fitter reads the configuration list).
build=${1:-build}
fit="$build/fit_gemm_model"
if [ ! -x "$fit" ]; then echo "fit model: skipped (no $fit: a build without CUDA)"; exit 0; fi
dir=$(mktemp -d)
trap 'rm -rf "$dir"' EXIT
s=1
while [ $s -le 16 ]; do
  case $s in 1) c=132 ;; 2) c=66 ;; 3) c=39 ;; 4) c=30 ;; 5) c=22 ;; 6) c=17 ;; 7|8) c=15 ;; 9) c=9 ;; *) c=7 ;; esac
  echo "{\"device\": \"check\", \"sms\": 132, \"hbm_gbps\": 3352.3, \"cluster\": $s, \"max_active_clusters\": $c}"
  s=$((s + 1))
done > "$dir/occ.jsonl"
shapes=$(python3 bench/gemm_shapes.py fit 1,16,64,256,4096 | tr , '\n' | awk 'NR % 4 == 1' | paste -sd, -)
"$fit" --occupancy "$dir/occ.jsonl" --synthesize "$dir/sweep.jsonl" --shapes "$shapes" --kind row || exit 1
"$fit" --occupancy "$dir/occ.jsonl" --out "$dir/model.inc" "$dir/sweep.jsonl" 2> "$dir/report.txt" || { cat "$dir/report.txt"; exit 1; }
gm() { sed -n "s/^  $1 .*geomean \([0-9.]*\),.*/\1/p" "$dir/report.txt" | head -1; }
start=$(gm start) cv=$(gm cv) fitted=$(gm fit)
if [ -z "$start" ] || [ -z "$cv" ] || [ -z "$fitted" ] || ! grep -q "k_fitted" "$dir/model.inc" ||
   ! awk -v s="$start" -v c="$cv" -v f="$fitted" 'BEGIN { exit !(f <= 1.02 && c <= 1.05 && f < s) }'; then
  echo "fit model: FAILED (pick / fastest: start $start, cross-validation $cv, fitted $fitted)"
  cat "$dir/report.txt"
  exit 1
fi
echo "fit model: a known truth recovered (pick / fastest: start $start, cross-validation $cv, fitted $fitted)"
