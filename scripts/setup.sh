#!/bin/sh
# Installs what llmk's build and tests need, where it is missing: a C11
# compiler, g++ (the exhaustive FP8 test), make and python3 (bench scripts).
# The CUDA toolkit (nvcc) is optional: without it the library builds
# CPU-only. Used by the README's commands and by .ci/run.
set -e
need=""
command -v cc >/dev/null 2>&1 || need="$need gcc"
command -v g++ >/dev/null 2>&1 || need="$need g++"
command -v make >/dev/null 2>&1 || need="$need make"
command -v python3 >/dev/null 2>&1 || need="$need python3"
if [ -n "$need" ]; then
  SUDO=""; [ "$(id -u)" -ne 0 ] && SUDO=sudo
  $SUDO apt-get update -q
  $SUDO apt-get install -y -q $need
fi
if command -v nvcc >/dev/null 2>&1 || [ -x /usr/local/cuda/bin/nvcc ]; then
  echo "setup: build tools ready; CUDA toolkit found (kernels for sm_90a will be built)"
else
  echo "setup: build tools ready; no CUDA toolkit: CPU-only build"
fi
