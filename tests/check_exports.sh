#!/bin/sh
# libllmk.so must export exactly the LLMK_API functions of include/llmk.h:
# engines can then bind to nothing else by accident.
build=${1:-build}
so="$build/libllmk.so"
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
sed -n 's/^LLMK_API [^(]*[ *]\(llmk_[a-z0-9_]*\)(.*/\1/p' include/llmk.h | sort -u > "$tmp/header"
nm -D --defined-only "$so" | awk '{print $3}' | sed 's/@.*//' | sort -u > "$tmp/exported"
if ! [ -s "$tmp/header" ]; then echo "exports: no LLMK_API function found in include/llmk.h"; exit 1; fi
if cmp -s "$tmp/header" "$tmp/exported"; then
  echo "exports: $so exports exactly the $(wc -l < "$tmp/header") functions of include/llmk.h"
  exit 0
fi
echo "exports: FAIL: $so and include/llmk.h differ (< header only, > exported only):"
diff "$tmp/header" "$tmp/exported" | grep '^[<>]'
exit 1
