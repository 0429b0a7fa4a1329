#!/bin/sh
# Every llmk command answers --help and -h with its usage and exit 0 without
# running anything (no GPU needed), `llmk help <command>` does the same, and
# an unknown option is refused with exit 2.
build=${1:-build}
llmk="$build/llmk"
fails=0 n=0
expect() { # expect CODE ARGS...: exit code CODE, and "usage" printed for 0
  want=$1; shift
  out=$(timeout 20 "$llmk" "$@" 2>&1); rc=$?
  n=$((n + 1))
  if [ "$rc" -ne "$want" ] || { [ "$want" -eq 0 ] && ! printf '%s' "$out" | grep -q usage; }; then
    echo "cli: FAIL: llmk $* exited $rc (wanted $want)"; printf '%s\n' "$out" | head -3; fails=$((fails + 1))
  fi
}
for cmd in check demo "bench quantize" "bench gemm" "bench attention" "bench rope" "bench kvcache" \
           "bench allreduce" "bench ops" "tune gemm" "tune allreduce"; do
  expect 0 $cmd --help
  expect 0 $cmd -h
  expect 0 help $cmd
  expect 2 $cmd --no-such-option
done
expect 0 --help
expect 0 -h
expect 0 help
expect 0 bench --help
expect 0 tune --help
expect 2
expect 2 no-such-command
expect 2 bench no-such-op
expect 2 tune no-such-thing
expect 2 bench gemm --m
if [ "$fails" -eq 0 ]; then echo "cli: all $n --help, help and bad-option calls answered as documented"; fi
[ "$fails" -eq 0 ]
