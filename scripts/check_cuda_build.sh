#!/usr/bin/env bash
# Compiles the CUDA kernels against the CUDA build of torch (no GPU needed) in
# a separate environment and a copy of the tree, and fails unless the built
# module registers CUDA kernels. VENV_CUDA (default .venv-cuda) is the folder.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$(pwd)
VENV_CUDA=${VENV_CUDA:-$ROOT/.venv-cuda}
if [ ! -x "$VENV_CUDA/bin/python" ]; then
  python3 -m venv "$VENV_CUDA"
fi
"$VENV_CUDA/bin/pip" install -q torch==2.14.1 ninja numpy setuptools wheel
COPY=$(mktemp -d)
trap 'rm -rf "$COPY"' EXIT
tar -c --exclude='./.venv*' --exclude='./build' --exclude='*.so' --exclude='./.git' . | tar -x -C "$COPY"
(cd "$COPY" && SEE_CUDA_BUILD=cuda MAX_JOBS=2 "$VENV_CUDA/bin/pip" install -q --no-build-isolation .)
(cd / && "$VENV_CUDA/bin/python" -c "
import see_cuda, sys
report = see_cuda.backends()
print('see_cuda (CUDA build) backends:', report)
sys.exit(0 if report['cuda'] and report['cpu'] else 'the CUDA build lacks its kernels')
")
