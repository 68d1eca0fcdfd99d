#!/usr/bin/env bash
# Fills .whl/ (ignored by git) with the pure-Python wheels that a GPU machine
# without network lacks, for scripts/gpu_check.sh to install with
# pip --no-index: setuptools new enough to read pyproject.toml (the build), and
# pytorch-metric-learning, which tests/test_proxy_anchor.py
# (and through it tests/test_see_loss.py) imports when collected, and which the
# benchmark times. Its dependencies (torch, numpy, scikit-learn, tqdm) must be
# on that machine already. faiss is not pure Python and is not fetched: only
# the evaluation and training tests need it, none of them a CUDA test.
# Run where an index is reachable; PIP (default: python3 -m pip) chooses pip.
set -euo pipefail
cd "$(dirname "$0")/.."
PIP=${PIP:-python3 -m pip}
mkdir -p .whl
$PIP download -q --no-deps --only-binary=:all: --dest .whl "pytorch-metric-learning${PML_VERSION:+==$PML_VERSION}"
# The build reads pyproject.toml's SPDX licence, which needs setuptools >= 77; torch 2.11
# (the GPU machines') asks for < 82. gpu_check.sh puts .whl's packages first on PYTHONPATH.
$PIP download -q --no-deps --only-binary=:all: --dest .whl "setuptools>=77,<82"
ls -l .whl
