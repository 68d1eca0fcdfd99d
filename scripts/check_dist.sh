#!/usr/bin/env bash
# Builds the sdist and the wheel (scripts/build_dist.sh), then installs each into a fresh
# venv as the README's Install section says (torch first, then --no-build-isolation for the
# sdist), and the sdist once more with SEE_CUDA_BUILD=none (the pure-PyTorch package), and
# runs scripts/smoke_install.py from outside the source tree in each. Run by .ci/run.
# REUSE_DIST=1 installs what dist/ holds from an earlier build instead of building again.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$(pwd)
VENV=${VENV:-.venv}
TORCH_SPEC=${TORCH_SPEC:-torch==2.13.0}
PYTHON=${PYTHON:-python3}
DIST="$ROOT/dist"
WORK=$(mktemp -d)
trap 'rm -rf "$WORK"' EXIT
if [ "${REUSE_DIST:-0}" != 1 ]; then
  DIST="$DIST" VENV="$VENV" bash scripts/build_dist.sh
fi
sdist=$(ls "$DIST"/see_cuda-*.tar.gz)
wheel=$(ls "$DIST"/see_cuda-*.whl)

fresh_venv() {  # a new venv with torch alone
  "$PYTHON" -m venv "$WORK/$1"
  "$WORK/$1/bin/pip" install -q --no-cache-dir "$TORCH_SPEC"
}
smoke() {  # runs the smoke test of venv $1 from a folder outside the tree, then drops
  # the venv: each holds a torch of its own, and three at once can fill a small disk
  (cd "$WORK" && "$WORK/$1/bin/python" "$ROOT/scripts/smoke_install.py" --expect "$2")
  rm -rf "${WORK:?}/$1"
}

fresh_venv wheel
"$WORK/wheel/bin/pip" install -q "$wheel"
echo "check_dist: the wheel installed: $(basename "$wheel")"
smoke wheel kernels

fresh_venv sdist
"$WORK/sdist/bin/pip" install -q setuptools wheel ninja
MAX_JOBS=${MAX_JOBS:-2} "$WORK/sdist/bin/pip" install -q --no-build-isolation "$sdist"
echo "check_dist: the sdist built and installed: $(basename "$sdist")"
smoke sdist kernels

fresh_venv none
"$WORK/none/bin/pip" install -q setuptools wheel
SEE_CUDA_BUILD=none "$WORK/none/bin/pip" install -q --no-build-isolation "$sdist"
echo "check_dist: the sdist installed with SEE_CUDA_BUILD=none"
smoke none reference
