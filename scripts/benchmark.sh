#!/usr/bin/env bash
# Sets up (scripts/setup.sh), then runs the throughput benchmark: fused kernels
# against the reference path, the original per-sample loop, pytorch-metric-
# learning's ProxyAnchorLoss and the matrix-product floor. Arguments go to
# benchmarks/throughput.py (e.g. --quick, --device cuda).
set -euo pipefail
cd "$(dirname "$0")/.."
VENV=${VENV:-.venv}
bash scripts/setup.sh
"$VENV/bin/python" benchmarks/throughput.py "$@"
