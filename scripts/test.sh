#!/usr/bin/env bash
# Sets up (scripts/setup.sh), then runs every test: the C++ core and the CUDA
# kernels under a host emulation of the GPU, with AddressSanitizer and
# UndefinedBehaviorSanitizer, the emulated kernels with ThreadSanitizer
# (ctest), and the Python suite.
# Tests that need a GPU skip themselves on a machine without one.
set -euo pipefail
cd "$(dirname "$0")/.."
VENV=${VENV:-.venv}
bash scripts/setup.sh
# The fused kernels must have been built: without them the fused tests would skip.
"$VENV/bin/python" -c "import see_cuda, sys; sys.exit(0 if see_cuda.backends()['cpu'] else 'see_cuda._C has no CPU kernels')"
# A default build must run on any x86-64 CPU: AVX code only in the copies dispatched at run time.
if [ -z "${SEE_CUDA_CPU_FLAGS:-}" ]; then bash scripts/check_cpu_isa.sh; fi
# The C++ core and the CUDA kernels' source under the host emulation
# (csrc/tests/cuda_emulation), with AddressSanitizer and UndefinedBehaviorSanitizer...
cmake -S . -B build/cmake-sanitize -DSEE_SANITIZE=ON > /dev/null
cmake --build build/cmake-sanitize -j 2 > /dev/null
ctest --test-dir build/cmake-sanitize --output-on-failure
# ... and the emulated kernels again under ThreadSanitizer, with its negative control.
cmake -S . -B build/cmake-tsan -DSEE_TSAN=ON > /dev/null
cmake --build build/cmake-tsan -j 2 > /dev/null
ctest --test-dir build/cmake-tsan --output-on-failure
"$VENV/bin/python" -m pytest -q "$@"
