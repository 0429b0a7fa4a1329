#!/bin/sh
# pytest of the PyTorch binding (python/tests) against $1/libllmk.so, where
# PyTorch and pytest are importable by $PYTHON (default python3); a message
# saying why otherwise. Exits non-zero if a test failed.
build=${1:-build}
py=${PYTHON:-python3}
if ! "$py" -c "import torch, pytest" > /dev/null 2>&1; then
  echo "python binding tests: skipped (PyTorch or pytest not importable by $py)"
  exit 0
fi
root=$(pwd)
LLMK_LIBRARY="$root/$build/libllmk.so" PYTHONPATH="$root/python:$root/python/tests" \
  "$py" -m pytest -q -p no:cacheprovider "$root/python/tests"
