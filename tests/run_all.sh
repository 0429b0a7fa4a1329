#!/bin/sh
# Runs every test binary in $1/tests, prints each one's summary and a total
# line "tests: N passed, N failed, N skipped"; exits 1 if any test failed.
build=${1:-build}
tp=0; tf=0; ts=0; bad=""
for t in "$build"/tests/*; do
  [ -x "$t" ] || continue
  name=$(basename "$t")
  echo "== $name"
  t0=$(date +%s)
  out=$("$t" 2>&1); rc=$?
  dt=$(($(date +%s) - t0))
  printf '%s\n' "$out" | grep -v '^[0-9]* passed, [0-9]* failed' | tail -n 40
  line=$(printf '%s\n' "$out" | grep -E '^[0-9]+ passed, [0-9]+ failed, [0-9]+ skipped$' | tail -n 1)
  if [ -z "$line" ]; then
    echo "$name: no summary line (exit code $rc, $dt s)"; tf=$((tf + 1)); bad="$bad $name"; continue
  fi
  echo "$name: $line ($dt s)"
  set -- $line
  tp=$((tp + $1)); tf=$((tf + $3)); ts=$((ts + $5))
  if [ "$rc" -ne 0 ] && [ "$3" -eq 0 ]; then tf=$((tf + 1)); bad="$bad $name(exit $rc)"; fi
  [ "$3" -ne 0 ] && bad="$bad $name"
done
[ -n "$bad" ] && echo "failing:$bad"
echo "tests: $tp passed, $tf failed, $ts skipped"
[ "$tf" -eq 0 ]
