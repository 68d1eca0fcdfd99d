#!/usr/bin/env bash
# Checks that a default build of the extension runs on any x86-64 CPU: every
# function holding VEX- or EVEX-encoded instructions (AVX, AVX2, FMA, AVX-512)
# must belong to one of the copies of the hot loops that are only called on
# CPUs with those instructions (namespaces avx2_fma and avx512; see
# csrc/cpu/hot_loops.h). Builds with SEE_CUDA_CPU_FLAGS (e.g. -march=native)
# fail it by design. Usage: scripts/check_cpu_isa.sh [see_cuda/_C*.so]
set -euo pipefail
cd "$(dirname "$0")/.."
so=${1:-$(ls see_cuda/_C*.so | head -n 1)}
if ! objdump -f "$so" | grep -q "x86-64"; then
  echo "check_cpu_isa: $so is not x86-64 code; nothing to check"
  exit 0
fi
offenders=$(objdump -d --no-show-raw-insn -C "$so" | awk '
  /^[0-9a-f]+ <.*>:$/ { fn = $0; next }
  /^ *[0-9a-f]+:\t/ {
    split($0, parts, "\t")
    if (parts[2] ~ /^v[a-z]/ || parts[2] ~ /%[yz]mm|%k[0-7]/) print fn
  }' | sort -u | grep -v -e '::avx2_fma::' -e '::avx512::' || true)
if [ -n "$offenders" ]; then
  echo "check_cpu_isa: $so has AVX/AVX-512 code outside the dispatched copies:"
  echo "$offenders"
  exit 1
fi
echo "check_cpu_isa: $so runs on baseline x86-64 outside the dispatched copies"
