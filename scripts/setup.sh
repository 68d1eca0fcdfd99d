#!/usr/bin/env bash
# Creates (or reuses) a virtual environment with the CPU build of torch and
# everything the tests and benchmarks use, then compiles see_cuda into it.
# VENV (default .venv) chooses the folder; TORCH_SPEC (default torch==2.13.0)
# the torch to install first: the extension is built against it
# (--no-build-isolation), so pip must not fetch a second torch for the build.
set -euo pipefail
cd "$(dirname "$0")/.."
VENV=${VENV:-.venv}
TORCH_SPEC=${TORCH_SPEC:-torch==2.13.0}
PYTHON=${PYTHON:-python3}

if [ ! -x "$VENV/bin/python" ]; then
  "$PYTHON" -m venv "$VENV"
fi
"$VENV/bin/pip" install -q "$TORCH_SPEC"
"$VENV/bin/pip" install -q -r requirements-dev.txt
"$VENV/bin/pip" install -q --no-build-isolation -e .
"$VENV/bin/python" -c "import see_cuda; print('see_cuda backends:', see_cuda.backends())"
