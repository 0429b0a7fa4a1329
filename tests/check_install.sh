#!/bin/sh
# `make install` into a fresh prefix, then the README's example
# (examples/quantize_gemm.c) compiled through pkg-config with -Wall -Wextra
# -Werror and run: linked against libllmk.so (found through llmk.pc's rpath)
# and against libllmk.a; with a CUDA build also the -DWITH_CUDA form, which
# runs on a visible Hopper GPU and on the CPU backend otherwise.
# Usage: tests/check_install.sh [BUILD] (make variables, e.g. NVCC=, after it)
build=${1:-build}
[ $# -gt 0 ] && shift
prefix=$(mktemp -d)
trap 'rm -rf "$prefix"' EXIT
fail() { echo "install: FAIL: $*"; exit 1; }
make --no-print-directory BUILD="$build" "$@" install PREFIX="$prefix/llmk" > "$prefix/install.log" 2>&1 ||
  { cat "$prefix/install.log"; fail "make install"; }
export PKG_CONFIG_PATH="$prefix/llmk/lib/pkgconfig"
command -v pkg-config > /dev/null || fail "pkg-config is not installed (scripts/setup.sh installs it)"
cflags=$(pkg-config --cflags llmk) && libs=$(pkg-config --libs llmk) && static=$(pkg-config --static --libs llmk) ||
  fail "pkg-config cannot read $PKG_CONFIG_PATH/llmk.pc"
case "$cflags" in *"$prefix/llmk/include"*) ;; *) fail "llmk.pc points to $cflags, not this prefix" ;; esac
warn="-std=c11 -Wall -Wextra -Werror"
ex=examples/quantize_gemm.c
cc $warn "$ex" $cflags $libs -lm -o "$prefix/shared" || fail "compiling $ex against libllmk.so"
"$prefix/shared" > "$prefix/out" 2>&1 || { cat "$prefix/out"; fail "$ex linked against libllmk.so"; }
ldd "$prefix/shared" | grep -q "$prefix/llmk/lib/libllmk.so" || fail "the program did not load the installed libllmk.so"
# static: the archive by name (the .so sits beside it), and its private libs
cc $warn "$ex" $cflags $(echo "$static" | sed 's/-lllmk/-l:libllmk.a/') -lm -o "$prefix/static" ||
  fail "compiling $ex against libllmk.a"
"$prefix/static" > "$prefix/out" 2>&1 || { cat "$prefix/out"; fail "$ex linked against libllmk.a"; }
ldd "$prefix/static" | grep -q libllmk && fail "the static program still loads a libllmk.so"
forms="shared and static"
if [ -f "$prefix/llmk/include/llmk.h" ] && "$prefix/llmk/bin/llmk" check 2>/dev/null | grep -q "built with CUDA"; then
  cuda=$(dirname "$(dirname "$(command -v nvcc 2>/dev/null || echo /usr/local/cuda/bin/nvcc)")")
  cc $warn -DWITH_CUDA "$ex" $cflags $libs -I"$cuda/include" -L"$cuda/lib64" -Wl,-rpath,"$cuda/lib64" -lcudart -lm -o "$prefix/cuda" ||
    fail "compiling $ex -DWITH_CUDA"
  "$prefix/cuda" > "$prefix/out" 2>&1 || { cat "$prefix/out"; fail "$ex -DWITH_CUDA"; }
  forms="$forms, and with CUDA ($(head -1 "$prefix/out" | sed 's/.*, //'))"
fi
echo "install: $ex built through pkg-config from a fresh prefix and ran: $forms"
