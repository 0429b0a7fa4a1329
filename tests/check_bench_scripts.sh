#!/bin/sh
# The benchmark scripts' modes that need no GPU and no torch work on any
# machine: bench/peer_gemm_general.py's --help, --dry-run (the general set's
# shape counts) and --summary (of a few rows written here), and a usage error
# exits 2; no held-out pair of bench/gemm_shapes.py is in the dispatcher
# table. pyflakes checks the script where it is importable by $PYTHON.
py=${PYTHON:-python3}
script=bench/peer_gemm_general.py
if ! command -v "$py" > /dev/null 2>&1; then
  echo "bench scripts: skipped ($py not found)"
  exit 0
fi
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
fails=0 n=0

# expect CODE PATTERN ARGS...: exit code CODE and a line matching PATTERN in the output
expect() {
  want=$1 pat=$2; shift 2
  out=$(timeout 60 "$py" "$script" "$@" 2>&1); rc=$?
  n=$((n + 1))
  if [ "$rc" -ne "$want" ] || ! printf '%s\n' "$out" | grep -q -- "$pat"; then
    echo "bench scripts: FAIL: $script $* exited $rc (wanted $want) or printed no line matching '$pat':"
    printf '%s\n' "$out" | tail -5
    fails=$((fails + 1))
  fi
}

expect 0 "^usage:" --help
expect 0 "^shapes: 700 (70 (N, K) pairs x 10 M; fit 350, holdout 350)" --dry-run --ops row
expect 0 "^shapes: 350 (35 (N, K) pairs x 10 M; fit 350, holdout 0)" --dry-run --ops row --split fit
expect 0 "^shapes: 350 (35 (N, K) pairs x 10 M; fit 0, holdout 350)" --dry-run --ops row --split holdout
expect 0 "^rows: 2100 (700 shapes x 3 ops)" --dry-run
expect 0 "^shapes: 4 (2 (N, K) pairs x 2 M; fit 2, holdout 2)" --dry-run --pairs 8192x7392,576x7168 --ms 16,1
expect 2 "unknown op" --dry-run --ops nosuchop
expect 2 "not in the general set" --dry-run --pairs 8192x8193
expect 2 "out is required" --ops row

# Four rows of two ops (one of them not ok) and a copy row: geometric means, the
# worst row, the decode roofline and tuned vs untuned.
cat > "$tmp/rows.jsonl" <<'EOF'
{"op": "copy", "shape": {"m": 32768, "k": 16384}, "gbps": 3000.0}
{"op": "gemm_fp8_rowwise", "shape": {"m": 16, "n": 8192, "k": 8192}, "split": "holdout", "tuned": false, "llmk_us": 25.0, "x_best": 1.25, "x_fbgemm": 2.0, "weight_bytes": 67108864, "frac_roof": 0.9, "ok": true}
{"op": "gemm_fp8_rowwise", "shape": {"m": 16, "n": 4096, "k": 4096}, "split": "fit", "tuned": true, "llmk_us": 9.0, "x_best": 0.8, "x_fbgemm": 0.5, "weight_bytes": 16777216, "frac_roof": 0.5, "ok": true}
{"op": "gemm_fp8_rowwise", "shape": {"m": 4096, "n": 4096, "k": 4096}, "split": "fit", "tuned": true, "llmk_us": 90.0, "x_best": 1.0, "x_fbgemm": 1.0, "weight_bytes": 16777216, "frac_roof": 0.2, "ok": true}
{"op": "gemm_bf16", "shape": {"m": 1, "n": 576, "k": 7168}, "split": "fit", "tuned": false, "llmk_us": null, "x_best": null, "x_fbgemm": null, "weight_bytes": 8257536, "ok": false}
EOF
expect 0 "^gemm_fp8_rowwise: 3 rows (3 timed, 0 not ok)" --summary "$tmp/rows.jsonl"
expect 0 "^  all             3     1.000      1.000" --summary "$tmp/rows.jsonl"
expect 0 "^  holdout         1     1.250      2.000" --summary "$tmp/rows.jsonl"
expect 0 "^  untuned         1     1.250      2.000" --summary "$tmp/rows.jsonl"
expect 0 "^  M=16            2     1.000      1.000" --summary "$tmp/rows.jsonl"
expect 0 "^  min x_best 0.800 at 16x4096x4096 (fit" --summary "$tmp/rows.jsonl"
expect 0 "^  x_best < 0.95: 1 rows: 16x4096x4096" --summary "$tmp/rows.jsonl"
expect 0 "frac_roof mean 0.700, min 0.500 at 16x4096x4096 (2 rows)" --summary "$tmp/rows.jsonl"
expect 0 "^gemm_bf16: 1 rows (0 timed, 1 not ok)" --summary "$tmp/rows.jsonl"
expect 0 '"x_best": 1.0,' --summary "$tmp/rows.jsonl" --summary-json
expect 1 "^error:" --summary "$tmp/no-such-file.jsonl"

# the held-out pairs are held out of tuning too: none is in the dispatcher table
n=$((n + 1))
if ! "$py" - <<'PY'
import sys
sys.path.insert(0, "bench")
import gemm_shapes
table = set()
for line in open("src/cuda/gemm_table.inc"):
    if line.startswith("{"):
        f = [x.strip() for x in line.strip("{},\n").split(",")]
        table.add((int(f[2]), int(f[3])))
both = sorted(gemm_shapes.HOLDOUT & table)
if both:
    print("bench scripts: FAIL: held-out (N, K) pairs in src/cuda/gemm_table.inc: %s" % both)
    sys.exit(1)
PY
then
  fails=$((fails + 1))
fi
if "$py" -m pyflakes --version > /dev/null 2>&1; then
  n=$((n + 1))
  if ! "$py" -m pyflakes "$script"; then
    echo "bench scripts: FAIL: pyflakes $script"
    fails=$((fails + 1))
  fi
fi
if [ "$fails" -ne 0 ]; then
  echo "bench scripts: $fails of $n checks failed"
  exit 1
fi
echo "bench scripts: $n checks passed ($script)"
