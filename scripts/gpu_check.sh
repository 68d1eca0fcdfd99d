#!/usr/bin/env bash
# A GPU check in one command: build the extension in place, record the
# environment, run every kernel once (scripts/cuda_smoke.py), the CUDA tests,
# the throughput benchmark in float32 and bfloat16, then compute-sanitizer's
# memcheck and racecheck on the smoke run, and write a summary. Needs no
# network: pure-Python wheels in .whl/ (scripts/gpu_wheels.sh) are installed
# into a temporary folder with pip --no-index.
#
#   bash scripts/gpu_check.sh [OUT_DIR]              # on a CUDA machine
#   bash scripts/gpu_check.sh --dry-run [OUT_DIR]    # every stage a CPU allows
#   bash scripts/gpu_check.sh --dry-run --rebuild    # ... building even if see_cuda/_C*.so exists
#   bash scripts/gpu_check.sh --dry-run --hide faiss,pytorch_metric_learning
#                                      # ... as if those could not be imported (as on a bare GPU machine)
#   bash scripts/gpu_check.sh --out-only [OUT_DIR]   # check and prepare OUT_DIR, print it, run nothing
#
# OUT_DIR: the argument, else $OUT (either relative to the caller's folder), else
# benchmarks/results/gpu-check-<date> in the repository (gpu-check-dry-run-<date>
# for a dry run). Before any stage it must be writable (else exit 2); files an
# earlier check wrote there are moved to OUT_DIR.earlier-<date-time>-<id>, and a
# folder holding anything else is refused (exit 2). --out-only does just that
# and prints the folder. It receives
# at most 8 files (what a remote GPU run can return): summary.txt, build.log,
# run.log (environment, smoke run, tests, benchmark tables), sanitizer.log, and
# the benchmark's JSON and PNG per dtype. Each stage is timed and logged; a
# failing stage is recorded and the next one runs (only a failed build stops
# the stages that need it); the exit status is 1 if any stage failed. In a
# copy of the tree without .git, GIT_COMMIT names the commit for the summary.
#
# Time budget on a 16-core machine with one H200 (about 7.8 minutes in all;
# no stage starts, and every stage is cut, at DEADLINE_S, 470 s by default,
# so the whole run stays under 8 minutes):
#   wheels        5 s    pip --no-index --target, a few pure-Python wheels
#   build       120 s    6 .cu and 11 .cpp files for one architecture, MAX_JOBS = cores
#   environment   5 s    nvidia-smi, versions, see_cuda.backends()
#   smoke        15 s    ~60 small cases, both dtypes
#   cuda tests   90 s    pytest -m cuda (~190 tests, hypothesis included)
#   bench fp32   40 s    five shapes, 7 repeats; the per-sample loops dominate
#   bench bf16   40 s    the same in bfloat16
#   gpu paths    35 s    the SEE loss path by path (one-call: fp32, checked, tf32 and bf16 products, bf16; composed) beside
#                        the cuBLAS floor at CUB-like, SOP-like and 10^6 classes (benchmarks/gpu_paths.py)
#   train step   30 s    the loss's share of a ResNet-50 step, B = 180 at 224 px, bf16 autocast:
#                        Proxy-Anchor, SEE, the published structure (benchmarks/train_step.py)
#   memcheck     45 s    the smoke run under compute-sanitizer, caching allocator off
#   racecheck    45 s    the same, shared-memory hazards
# The two tables of gpu paths and train step go to run.log (no file of their own).
# The sanitizers run last: some machines refuse them ("Device not supported"),
# which is recorded as skipped, and the deadline cuts them first.
set -u

usage() { awk 'NR > 1 && /^# Time budget/ { exit } NR > 1 { sub(/^# ?/, ""); print }' "$0"; }

DRY_RUN=0
REBUILD=0
HIDE=""
OUT_DIR=""
OUT_ONLY=0
while [ $# -gt 0 ]; do
  case "$1" in
    --dry-run) DRY_RUN=1 ;;
    --rebuild) REBUILD=1 ;;
    --out-only) OUT_ONLY=1 ;;
    --hide) HIDE=${2:?--hide takes a comma-separated list of modules}; shift ;;
    -h|--help) usage; exit 0 ;;
    -*) echo "gpu_check.sh: unknown option $1" >&2; usage >&2; exit 2 ;;
    *) if [ -n "$OUT_DIR" ]; then echo "gpu_check.sh: one OUT_DIR only" >&2; exit 2; fi; OUT_DIR=$1 ;;
  esac
  shift
done

CALLER_DIR=$(pwd)
cd "$(dirname "$0")/.." || exit 2
ROOT=$(pwd)
PYTHON=${PYTHON:-python3}

# ---------------------------------------------------------------- the output folder, before any stage
# A folder that cannot be written would fail every log write, and each stage would be
# misreported; files left by others would break the output rules only at the end.
refuse() { echo "gpu_check.sh: $1" >&2; exit 2; }
OUT_DIR=${OUT_DIR:-${OUT:-}}
if [ -z "$OUT_DIR" ]; then
  OUT_DIR=$ROOT/benchmarks/results/gpu-check-$([ "$DRY_RUN" = 1 ] && echo dry-run-)$(date +%Y-%m-%d)
elif [ "${OUT_DIR#/}" = "$OUT_DIR" ]; then
  OUT_DIR=$CALLER_DIR/$OUT_DIR
fi
if ! mkdir -p "$OUT_DIR" 2> /dev/null || ! PROBE=$(mktemp "$OUT_DIR/.write-test.XXXXXX" 2> /dev/null); then
  refuse "cannot write to the output folder $OUT_DIR: pass a writable folder (the OUT_DIR argument or \$OUT)"
fi
rm -f "$PROBE"
OUT_DIR=$(cd "$OUT_DIR" && pwd)
# What this script writes there; anything else is refused.
OWN_FILES='^(summary\.txt|build\.log|run\.log|sanitizer\.log|throughput_[A-Za-z0-9_.-]+\.(json|png))$'
FOREIGN=$(ls -A "$OUT_DIR" | grep -Ev "$OWN_FILES")
if [ -n "$FOREIGN" ]; then
  refuse "the output folder $OUT_DIR holds $(echo "$FOREIGN" | wc -l) entries this script did not write ($(echo "$FOREIGN" | head -3 | paste -sd, -)...): empty it or pass another folder"
fi
EARLIER=$(ls -A "$OUT_DIR")
if [ -n "$EARLIER" ]; then  # an earlier check's results: kept beside, never mixed with this one's
  ASIDE=$(mktemp -d "$OUT_DIR.earlier-$(date +%Y%m%d-%H%M%S)-XXXX" 2> /dev/null) \
    && (cd "$OUT_DIR" && mv -- $EARLIER "$ASIDE/") \
    || refuse "cannot move the earlier check's files out of $OUT_DIR: move or delete them, or pass another folder"
  echo "gpu_check.sh: moved the $(echo "$EARLIER" | wc -l) files of an earlier check from $OUT_DIR to $ASIDE"
fi
if [ "$OUT_ONLY" = 1 ]; then
  echo "$OUT_DIR"
  exit 0
fi
SUMMARY=$OUT_DIR/summary.txt
BUILD_LOG=$OUT_DIR/build.log
RUN_LOG=$OUT_DIR/run.log
SANITIZER_LOG=$OUT_DIR/sanitizer.log
: > "$RUN_LOG"
WORK=$(mktemp -d)
trap 'rm -rf "$WORK"' EXIT
export PYTHONPATH="$ROOT${PYTHONPATH:+:$PYTHONPATH}"  # this checkout's see_cuda, built in place
export PYTHONUNBUFFERED=1  # a stage cut at its limit still leaves its output in the log
if [ -n "$HIDE" ]; then  # modules whose import raises ImportError, ahead of the installed ones
  for module in ${HIDE//,/ }; do
    mkdir -p "$WORK/hidden/$module"
    echo "raise ImportError('$module is hidden by scripts/gpu_check.sh --hide')" > "$WORK/hidden/$module/__init__.py"
  done
  export PYTHONPATH="$WORK/hidden:$PYTHONPATH"
fi

if [ "$DRY_RUN" = 1 ]; then MODE="dry run (CPU)"; DEVICE=cpu; else MODE="GPU"; DEVICE=cuda; fi
[ -n "$HIDE" ] && MODE="$MODE, hiding $HIDE"
DEADLINE_S=${DEADLINE_S:-$([ "$DRY_RUN" = 1 ] && echo 1800 || echo 470)}
START=$(date +%s)

STAGES=()      # one "name|status|seconds|budget|note" per stage
FAILED=0
elapsed() { echo $(( $(date +%s) - START )); }
record() {     # name status seconds budget note
  STAGES+=("$1|$2|$3|$4|$5")
  [ "$2" = failed ] && FAILED=1
  printf '[%4ss] %-16s %-8s %5ss  %s\n' "$(elapsed)" "$1" "$2" "$3" "$5"
}
section() { printf '\n===== %s =====\n' "$1" >> "$2"; }
# A file returned from a remote GPU run may hold 16 MiB: keep a long log's head and tail.
trim_log() {
  local size
  size=$(stat -c %s "$1" 2> /dev/null || echo 0)
  if [ "$size" -gt $(( 8 * 1024 * 1024 )) ]; then
    { head -c $(( 1024 * 1024 )) "$1"; printf '\n[... %s bytes left out ...]\n' "$(( size - 7 * 1024 * 1024 ))"
      tail -c $(( 6 * 1024 * 1024 )) "$1"; } > "$1.trimmed" && mv "$1.trimmed" "$1"
  fi
}

# run_stage NAME BUDGET CAP MIN LOG CMD...: runs CMD with a time limit of
# min(CAP, time left before DEADLINE_S), output appended to LOG. Sets RC
# (124 when the limit was hit; 200 when the stage did not start) and SECONDS_TAKEN.
run_stage() {
  local name=$1 budget=$2 cap=$3 min=$4 log=$5
  shift 5
  local left=$(( DEADLINE_S - $(elapsed) ))
  local limit=$(( cap < left ? cap : left ))
  SECONDS_TAKEN=0
  if [ "$limit" -lt "$min" ]; then
    RC=200
    return
  fi
  section "$name (budget ${budget} s, limit ${limit} s): $*" "$log"
  local begin
  begin=$(date +%s)
  timeout --kill-after=10 "$limit" "$@" >> "$log" 2>&1
  RC=$?
  SECONDS_TAKEN=$(( $(date +%s) - begin ))
  echo "[exit status $RC after ${SECONDS_TAKEN} s]" >> "$log"
}

# Why the stage with status RC did not pass; empty if it did.
status_note() {
  case "$RC" in
    0) echo "" ;;
    124|137) echo "timed out after ${SECONDS_TAKEN} s" ;;
    200) echo "not started: too little time left before the ${DEADLINE_S} s deadline" ;;
    *) echo "exit status $RC" ;;
  esac
}
record_rc() {  # name budget note: the stage's status from RC
  local why note=$3
  why=$(status_note)
  [ -n "$why" ] && note="$why${3:+; $3}"
  if [ "$RC" = 0 ]; then record "$1" passed "$SECONDS_TAKEN" "$2" "$note"
  elif [ "$RC" = 200 ]; then record "$1" skipped 0 "$2" "$why"
  else record "$1" failed "$SECONDS_TAKEN" "$2" "$note"
  fi
}

echo "see_cuda GPU check: $MODE, results in $OUT_DIR (deadline ${DEADLINE_S} s)"

# ---------------------------------------------------------------- wheels (budget 5 s)
SITE=$WORK/site
if compgen -G ".whl/*.whl" > /dev/null; then
  run_stage wheels 5 60 5 "$RUN_LOG" "$PYTHON" -m pip install -q --no-index --no-deps --target "$SITE" .whl/*.whl
  record_rc wheels 5 "$(cd .whl && echo ./*.whl)"
  export PYTHONPATH="$SITE:$PYTHONPATH"
else
  record wheels skipped 0 5 "no .whl/ folder: nothing to install"
fi

# ---------------------------------------------------------------- build (budget 120 s)
# In place, against the torch python3 finds, never from an index. The dry run
# reuses an existing build unless --rebuild (torch here is a CPU build).
BUILD_OK=1
EXISTING_SO=$(ls see_cuda/_C*.so 2> /dev/null | head -1)
if [ "$DRY_RUN" = 1 ] && [ -n "$EXISTING_SO" ] && [ "$REBUILD" = 0 ]; then
  echo "dry run: $EXISTING_SO exists, not rebuilt (--rebuild builds)" > "$BUILD_LOG"
  record build skipped 0 120 "dry run: $EXISTING_SO exists, reused (--rebuild builds it)"
else
  if [ "$DRY_RUN" = 1 ]; then
    run_stage build 120 1200 60 "$BUILD_LOG" env MAX_JOBS="${MAX_JOBS:-1}" "$PYTHON" setup.py build_ext --inplace
  else
    run_stage build 120 330 60 "$BUILD_LOG" env SEE_CUDA_BUILD=cuda TORCH_CUDA_ARCH_LIST="${TORCH_CUDA_ARCH_LIST:-9.0}" \
      MAX_JOBS="${MAX_JOBS:-$(nproc)}" "$PYTHON" setup.py build_ext --inplace
  fi
  if [ "$RC" = 0 ]; then
    record_rc build 120 "$(ls see_cuda/_C*.so 2> /dev/null | head -1)"
  else  # the first compiler error, else the build's last words
    record_rc build 120 "$( (grep -E -m1 'error[: ]' "$BUILD_LOG" || grep -v '^\[exit status' "$BUILD_LOG" | tail -1) | cut -c1-300)"
    BUILD_OK=0
  fi
fi
# The build must give this device's kernels; a CUDA run without them tests nothing.
if [ "$BUILD_OK" = 1 ]; then
  run_stage "kernels load" 5 60 5 "$RUN_LOG" "$PYTHON" -c "
import sys, see_cuda
b = see_cuda.backends()
print('see_cuda.backends():', b)
sys.exit(0 if b['$DEVICE'] and ('$DEVICE' == 'cpu' or b['cuda_device']) else 'no $DEVICE kernels (or no device) in this build')"
  record_rc "kernels load" 5 "see_cuda.backends() has $DEVICE"
  [ "$RC" = 0 ] || BUILD_OK=0
fi
if [ "$BUILD_OK" = 0 ]; then
  echo "!!! the build failed or lacks the $DEVICE kernels: see $BUILD_LOG and $RUN_LOG; the stages that need it are skipped" >&2
fi

# ---------------------------------------------------------------- environment (budget 5 s)
ENVIRONMENT=$WORK/environment.txt
cat > "$WORK/environment.py" <<'EOF'
import importlib, platform, torch
print("python", platform.python_version(), "| torch", torch.__version__, "| torch CUDA", torch.version.cuda,
      "| cuDNN", torch.backends.cudnn.version() if torch.cuda.is_available() else None)
print("CUDA device:", torch.cuda.get_device_name(0) if torch.cuda.is_available() else None)
try:
    import see_cuda
    print("see_cuda.backends():", see_cuda.backends())
except Exception as error:
    print("see_cuda does not import:", error)
for name in ("pytorch_metric_learning", "faiss", "hypothesis", "matplotlib", "scipy", "numpy"):
    try:
        module = importlib.import_module(name)
        print(name + ":", getattr(module, "__version__", "present"))
    except ImportError:
        print(name + ": cannot be imported")
EOF
run_stage environment 5 60 5 "$ENVIRONMENT" bash -c '
  (command -v nvidia-smi > /dev/null && nvidia-smi) || echo "nvidia-smi: not found"
  (command -v nvcc > /dev/null && nvcc --version | tail -2) || echo "nvcc: not found"
  (command -v compute-sanitizer > /dev/null && compute-sanitizer --version | tail -1) || echo "compute-sanitizer: not found"
  echo "cpu cores: $(nproc)"
  "$1" "$2"' _ "$PYTHON" "$WORK/environment.py"
record_rc environment 5 ""
cat "$ENVIRONMENT" >> "$RUN_LOG"

# ---------------------------------------------------------------- smoke run (budget 15 s)
if [ "$BUILD_OK" = 1 ]; then
  run_stage smoke 15 90 10 "$RUN_LOG" "$PYTHON" scripts/cuda_smoke.py --device "$DEVICE"
  record_rc smoke 15 "$(grep -E '^[0-9]+ ok, ' "$RUN_LOG" | tail -1)"
else
  record smoke skipped 0 15 "no usable build"
fi

# ---------------------------------------------------------------- CUDA tests (budget 90 s)
# A module that cannot be imported (faiss or pytorch-metric-learning missing)
# must not stop the others: pytest goes on, and the modules it could not
# collect are listed in a stage of their own, which then fails (their CUDA
# tests, if any, did not run).
# With pytest-xdist (there on the GPU machines) the tests run in TEST_WORKERS
# processes sharing the GPU (default 4; 0 runs them in this one).
if [ "$BUILD_OK" = 1 ]; then
  JUNIT=$WORK/cuda-tests.xml
  WORKERS=()
  if [ "${TEST_WORKERS:-4}" != 0 ] && "$PYTHON" -c "import xdist" 2> /dev/null; then
    WORKERS=(-n "${TEST_WORKERS:-4}")
  fi
  run_stage "cuda tests" 90 180 30 "$RUN_LOG" "$PYTHON" -m pytest -m cuda -q -rfEs -p no:cacheprovider \
    --continue-on-collection-errors --durations=10 --junitxml="$JUNIT" "${WORKERS[@]}"
  if [ "$RC" = 200 ]; then
    record_rc "cuda tests" 90 ""
  else
    TESTS_RC=$RC
    while IFS='|' read -r what status note; do
      if [ "$what" = tests ] && { [ "$TESTS_RC" = 124 ] || [ "$TESTS_RC" = 137 ]; }; then
        status=failed
        note="timed out after ${SECONDS_TAKEN} s; $note"
      fi
      if [ "$what" = tests ]; then record "cuda tests" "$status" "$SECONDS_TAKEN" 90 "$note"
      else record "test collection" "$status" 0 0 "$note"
      fi
    done < <("$PYTHON" scripts/junit_summary.py "$JUNIT")
  fi
else
  record "cuda tests" skipped 0 90 "no usable build"
fi

# ---------------------------------------------------------------- benchmarks (budget 40 s each)
if [ "$BUILD_OK" = 1 ]; then
  if [ "$DRY_RUN" = 1 ]; then
    run_stage "bench float32" 40 600 30 "$RUN_LOG" "$PYTHON" benchmarks/throughput.py --device cpu --quick \
      --output-dir "$OUT_DIR"
    record_rc "bench float32" 40 "--device cpu --quick"
    record "bench bfloat16" skipped 0 40 "bfloat16 runs on CUDA only"
  else
    for dtype in float32 bfloat16; do
      run_stage "bench $dtype" 40 100 30 "$RUN_LOG" "$PYTHON" benchmarks/throughput.py --device cuda --dtype "$dtype" \
        --repeats 7 --warmup 2 --output-dir "$OUT_DIR"
      record_rc "bench $dtype" 40 "five shapes, 7 repeats"
    done
  fi
else
  record "bench float32" skipped 0 40 "no usable build"
  record "bench bfloat16" skipped 0 40 "no usable build"
fi

# ---------------------------------------------------------------- GPU paths, a training step (budgets 35 s, 30 s)
if [ "$BUILD_OK" = 1 ]; then
  if [ "$DRY_RUN" = 1 ]; then
    run_stage "gpu paths" 35 600 20 "$RUN_LOG" "$PYTHON" benchmarks/gpu_paths.py --device cpu --quick --repeats 1 \
      --warmup 0
    record_rc "gpu paths" 35 "--device cpu --quick"
    run_stage "train step" 30 600 20 "$RUN_LOG" "$PYTHON" benchmarks/train_step.py --device cpu --quick --repeats 1 \
      --warmup 0 --classes 100
    record_rc "train step" 30 "--device cpu --quick"
  else
    run_stage "gpu paths" 35 90 20 "$RUN_LOG" "$PYTHON" benchmarks/gpu_paths.py --device cuda --repeats 5 --warmup 2
    record_rc "gpu paths" 35 "fp32, tf32, bf16; CUB-like, SOP-like, 10^6 classes"
    run_stage "train step" 30 90 20 "$RUN_LOG" "$PYTHON" benchmarks/train_step.py --device cuda --repeats 5 --warmup 2
    record_rc "train step" 30 "ResNet-50, B = 180 at 224 px, bf16 autocast"
  fi
else
  record "gpu paths" skipped 0 35 "no usable build"
  record "train step" skipped 0 30 "no usable build"
fi

# ---------------------------------------------------------------- compute-sanitizer (budget 45 s each)
# The smoke run under memcheck (out-of-bounds and misaligned accesses; with
# PyTorch's caching allocator off, so that every tensor is its own allocation)
# and racecheck (shared-memory hazards). Last, since a machine may refuse them.
SANITIZER=$(command -v compute-sanitizer || ls /usr/local/cuda/bin/compute-sanitizer 2> /dev/null | head -1)
: > "$SANITIZER_LOG"
for tool in memcheck racecheck; do
  if [ "$DRY_RUN" = 1 ]; then
    echo "$tool: not run (dry run)" >> "$SANITIZER_LOG"
    record "$tool" skipped 0 45 "dry run: no GPU$([ -n "$SANITIZER" ] || echo '; compute-sanitizer is not installed')"
  elif [ -z "$SANITIZER" ]; then
    record "$tool" skipped 0 45 "compute-sanitizer is not installed"
  elif [ "$BUILD_OK" = 0 ]; then
    record "$tool" skipped 0 45 "no usable build"
  else
    TOOL_LOG=$WORK/$tool.log
    run_stage "$tool" 45 120 30 "$TOOL_LOG" env PYTORCH_NO_CUDA_MEMORY_CACHING=1 "$SANITIZER" --tool "$tool" \
      --error-exitcode 86 --print-limit 20 "$PYTHON" scripts/cuda_smoke.py --device cuda
    cat "$TOOL_LOG" >> "$SANITIZER_LOG"
    VERDICT=$(grep -E -m1 'ERROR SUMMARY|RACECHECK SUMMARY' "$TOOL_LOG" | sed 's/^=* *//')
    if [ "$RC" != 0 ] && grep -qiE "device not supported|not supported on this|unable to (find|load) injection" "$TOOL_LOG"; then
      record "$tool" skipped "$SECONDS_TAKEN" 45 \
        "compute-sanitizer cannot run here: $(grep -iE -m1 'not supported|injection' "$TOOL_LOG" | sed 's/^=* *//')"
    elif [ "$RC" = 86 ]; then  # the sanitizer found errors (--error-exitcode)
      record "$tool" failed "$SECONDS_TAKEN" 45 "$VERDICT"
    else
      record_rc "$tool" 45 "$VERDICT"
    fi
  fi
done

# ---------------------------------------------------------------- summary and output rules
# A copy of the tree without .git names its commit by GIT_COMMIT.
if COMMIT=$(git rev-parse --short HEAD 2> /dev/null); then
  git diff --quiet HEAD 2> /dev/null || COMMIT="$COMMIT + local changes"
else
  COMMIT=${GIT_COMMIT:-unknown (no git here: set GIT_COMMIT)}
fi
write_summary() {
  {
    echo "see_cuda GPU check ($MODE), $(date -Iseconds), commit $COMMIT"
    grep -E "^(python|CUDA device|see_cuda.backends|pytorch_metric_learning|faiss|compute-sanitizer)" "$ENVIRONMENT" 2> /dev/null
    echo
    printf '%-16s %-8s %8s %8s  %s\n' stage status seconds budget note
    local line name status seconds budget note
    for line in "${STAGES[@]}"; do
      IFS='|' read -r name status seconds budget note <<< "$line"
      printf '%-16s %-8s %8s %8s  %s\n' "$name" "$status" "$seconds" "$budget" "$note"
    done
    echo
    echo "total $(elapsed) s; $(printf '%s\n' "${STAGES[@]}" | grep -c '|passed|') passed," \
      "$(printf '%s\n' "${STAGES[@]}" | grep -c '|failed|') failed, $(printf '%s\n' "${STAGES[@]}" | grep -c '|skipped|') skipped"
    [ -n "${OUTPUT_CHECK:-}" ] && printf '\nfiles (bytes, name):\n%s\n' "$OUTPUT_CHECK"
  } > "$SUMMARY"
}
write_summary
for log in "$BUILD_LOG" "$RUN_LOG" "$SANITIZER_LOG"; do trim_log "$log"; done
OUTPUT_CHECK=$("$PYTHON" scripts/check_outputs.py "$OUT_DIR" 2>&1)
if [ $? = 0 ]; then record "output rules" passed 0 1 "$(echo "$OUTPUT_CHECK" | tail -1)"
else record "output rules" failed 0 1 "$(echo "$OUTPUT_CHECK" | grep -m3 'rule broken' | tr '\n' ' ')"
fi
write_summary  # again, with the output check and the files in it

echo
cat "$SUMMARY"
echo
echo "files written:"
"$PYTHON" scripts/check_outputs.py "$OUT_DIR" | sed 's/^/  /'
exit "$FAILED"
