#!/usr/bin/env bash
# Builds the extension, CUDA kernels included, against the torch of another
# Python (a venv with, say, torch 2.11.0+cu130, the torch of the GPU machines)
# in a copy of the tree, and checks that the module loads and registers its CPU
# and CUDA kernels. No GPU is needed: nothing built here is run on one. Not part
# of CI, which already builds against two torch versions.
#
#   bash scripts/check_build_with_torch.sh /path/to/venv/bin/python [LOG]
#
# TORCH_CUDA_ARCH_LIST (default 9.0) and MAX_JOBS (default 1) go to the build;
# the build's output goes to LOG (default: a temporary file, its tail printed
# on failure).
set -euo pipefail
TORCH_PYTHON=${1:?usage: check_build_with_torch.sh PYTHON [LOG]}
cd "$(dirname "$0")/.."
COPY=$(mktemp -d)
LOG=${2:-$COPY.log}
trap 'rm -rf "$COPY"' EXIT
tar -c --exclude='./.venv*' --exclude='./build' --exclude='*.so' --exclude='./.git' --exclude='./.whl' \
  --exclude='./results' --exclude='./benchmarks/results' . | tar -x -C "$COPY"
echo "building in $COPY against $("$TORCH_PYTHON" -c 'import torch; print("torch", torch.__version__, "CUDA", torch.version.cuda)'); log: $LOG"
start=$(date +%s)
if ! (cd "$COPY" && SEE_CUDA_BUILD=cuda TORCH_CUDA_ARCH_LIST=${TORCH_CUDA_ARCH_LIST:-9.0} MAX_JOBS=${MAX_JOBS:-1} \
      "$TORCH_PYTHON" setup.py build_ext --inplace > "$LOG" 2>&1); then
  tail -40 "$LOG"
  echo "the build failed after $(( $(date +%s) - start )) s (log: $LOG)" >&2
  exit 1
fi
echo "built in $(( $(date +%s) - start )) s"
cd "$COPY" && "$TORCH_PYTHON" - <<'EOF'
import sys

import torch

import see_cuda

backends = see_cuda.backends()
print("see_cuda.backends():", backends, "| torch", torch.__version__)
if not (backends["cpu"] and backends["cuda"]):
    sys.exit("the build lacks its CPU or CUDA kernels")
if not torch.cuda.is_available():  # the CUDA kernels are registered but cannot run here
    try:
        see_cuda.mmd_centers(3, 4, device="cuda")
    except (RuntimeError, AssertionError) as error:
        print("no GPU here: calling a CUDA op fails as it should:", str(error).splitlines()[0])
    else:
        sys.exit("a CUDA op ran without a GPU")
EOF
