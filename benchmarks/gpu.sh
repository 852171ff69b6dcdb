#!/usr/bin/env bash
# The GPU check in one prepared script: install taiji (no network needed), run the NCCL check
# (a 1-rank NCCL group: collectives and a DDP training step, tests/cuda/test_nccl_gpu.py; it
# says whether NCCL ran, and why not), the CUDA tests (the rest of tests/cuda: the real-GPU
# tests, float16 AMP on the GPU, and the fake-device ones), then the GPU benchmark, whose two
# tables (float32 training against PyTorch / JAX / CuPy, then float16 AMP against float32 and
# PyTorch AMP) come last. Made for a machine with CuPy, PyTorch and JAX preinstalled; a missing
# peer is skipped with a note. The whole script keeps to a time budget (default 540 s, for
# one 10-minute call): each phase gets what is left, capped, and the benchmark is told its
# own budget so that its tables always print.
#
#   bash benchmarks/gpu.sh [gpu_bench.py options, e.g. --seconds 0.5]
#
# Environment: PYTHON (default python3), GPU_TOTAL_SECONDS (default 540), GPU_NCCL_TIMEOUT
# (default 90), GPU_TEST_TIMEOUT (default 220; both at most what the budget leaves),
# GPU_BENCH_JSON (where to write the results as JSON; default $OUT/ when OUT is set),
# GPU_SKIP_NCCL=1 / GPU_SKIP_TESTS=1 to skip the NCCL check / the tests, GPU_SKIP_INSTALL=1 to
# use the taiji already importable (a dry run on CPU:
# GPU_SKIP_INSTALL=1 bash benchmarks/gpu.sh --device cpu --quick), GPU_SKIP_PROFILE=1 to skip
# the closing profile (benchmarks/gpu_profile.py, given 80 s of the budget).
set -u
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
export PYTHONUNBUFFERED=1
LOG=${OUT:-/tmp}
JSON=${GPU_BENCH_JSON:-${OUT:+$OUT/gpu_bench.json}}
TOTAL=${GPU_TOTAL_SECONDS:-540}
BENCH_MIN=150  # what the tests leave the benchmark at least
SECONDS=0

left() { echo $((TOTAL - SECONDS)); }
# a phase's limit: the smaller of $1 and $2, but at least 20 s (timeout 0 would mean none)
limit() { local t=$1; [ "$2" -lt "$t" ] && t=$2; [ "$t" -lt 20 ] && t=20; echo "$t"; }

echo "== install taiji (pip install --no-deps -e .)"
if [ "${GPU_SKIP_INSTALL:-0}" = "1" ]; then
  echo "skipped (GPU_SKIP_INSTALL=1)"
elif ! $PY -m pip install -q --no-deps -e . >/tmp/taiji_pip.log 2>&1; then
  # without network, pip's isolated build cannot fetch setuptools: use the installed one
  if ! $PY -m pip install -q --no-deps --no-build-isolation -e . >>/tmp/taiji_pip.log 2>&1; then
    tail -5 /tmp/taiji_pip.log
    echo "pip install failed: running taiji from the source tree"
    export PYTHONPATH=$PWD${PYTHONPATH:+:$PYTHONPATH}
  fi
fi
nvidia-smi -L 2>/dev/null || echo "(no nvidia-smi)"
$PY - <<'EOF'
import taiji
import taiji.distributed as dist
from taiji.distributed._backend import nccl_unavailable_reason
ok = taiji.cuda.is_available()
print("taiji", taiji.__version__, "| CUDA:", taiji.cuda.get_device_name() if ok
      else f"not available ({taiji.cuda.unavailable_reason()})")
print("NCCL:", "available" if dist.is_nccl_available() else
      f"not available ({nccl_unavailable_reason()})")
EOF
have_pytest=1
$PY -m pytest --version >/dev/null 2>&1 || have_pytest=0

nccl="not run (GPU_SKIP_NCCL=1)"
if [ "${GPU_SKIP_NCCL:-0}" != "1" ]; then
  echo "== NCCL check (tests/cuda/test_nccl_gpu.py: a 1-rank NCCL group)"
  if [ $have_pytest = 0 ]; then
    nccl="did not run: pytest is not installed here"
  else
    t=$(limit "${GPU_NCCL_TIMEOUT:-90}" $(($(left) - BENCH_MIN)))
    timeout "$t" $PY -m pytest tests/cuda/test_nccl_gpu.py -v -s -p no:cacheprovider \
      -o addopts="" -rsfE --tb=short >"$LOG/gpu_nccl.log" 2>&1
    nccl_rc=$?
    grep -E "PASSED|FAILED|ERROR|SKIPPED|program mode" "$LOG/gpu_nccl.log" | tail -12
    summary=$(grep -E "[0-9]+ (passed|failed|skipped|error)" "$LOG/gpu_nccl.log" | tail -1)
    if [ $nccl_rc -eq 124 ]; then
      nccl="FAILED: stopped at the time limit (${t} s; see $LOG/gpu_nccl.log)"
    elif [ $nccl_rc -eq 0 ] && grep -q " passed" <<<"$summary" && \
         ! grep -q "skipped" <<<"$summary"; then
      nccl="ran on the GPU (1-rank NCCL group): $summary"
    elif [ $nccl_rc -eq 0 ] && grep -q "skipped" <<<"$summary"; then
      why=$(grep -m1 -oE "NCCL not available: .*" "$LOG/gpu_nccl.log")
      nccl="did not run: ${why:-skipped (see $LOG/gpu_nccl.log)}"
    else
      nccl="FAILED (exit $nccl_rc): $summary (see $LOG/gpu_nccl.log)"
    fi
  fi
  echo "NCCL: $nccl"
fi

test_rc=0
if [ "${GPU_SKIP_TESTS:-0}" != "1" ]; then
  echo "== tests (tests/cuda: real GPU, float16 AMP and fake device)"
  if [ $have_pytest = 1 ]; then
    par=""
    # workers compile CuPy kernels (NVRTC) in parallel on a fresh machine
    $PY -c "import xdist" >/dev/null 2>&1 && par="-n 4"
    t=$(limit "${GPU_TEST_TIMEOUT:-220}" $(($(left) - BENCH_MIN)))
    timeout "$t" $PY -m pytest tests/cuda -q -p no:cacheprovider $par \
      --ignore=tests/cuda/test_nccl_gpu.py -o addopts="" -rfE --tb=short \
      >"$LOG/gpu_tests.log" 2>&1
    test_rc=$?
    grep -E "^(FAILED|ERROR)|Error|passed|failed|error" "$LOG/gpu_tests.log" | tail -40
    [ $test_rc -eq 124 ] && echo "tests stopped at the time limit (${t} s; see $LOG/gpu_tests.log)"
  else
    echo "pytest is not installed here: tests skipped"
  fi
fi

echo "== benchmark (benchmarks/gpu_bench.py: float32 table, then the AMP table)"
PROFILE_S=0
[ "${GPU_SKIP_PROFILE:-0}" != "1" ] && PROFILE_S=80
t=$(($(left) - 5 - PROFILE_S))
[ $t -lt 60 ] && t=60
budget=$((t - 45))  # (imports, the last contender started before the budget, printing)
timeout "$t" $PY benchmarks/gpu_bench.py --seconds 0.6 --budget "$budget" \
  ${JSON:+--json "$JSON"} "$@"
bench_rc=$?
[ $bench_rc -eq 124 ] && echo "benchmark stopped at the time limit (${t} s)"
# where the time goes (benchmarks/gpu_profile.py), in what the budget leaves
if [ "${GPU_SKIP_PROFILE:-0}" != "1" ] && [ "$(left)" -ge 60 ]; then
  echo "== profile (benchmarks/gpu_profile.py --kernels: steps, replays, kernels, eager host time)"
  pargs="--kernels --steps 100"
  case " $* " in *" --device cpu "*) pargs="--device cpu --quick" ;; esac  # (a dry run)
  timeout $(($(left) - 5)) $PY benchmarks/gpu_profile.py $pargs >"$LOG/gpu_profile.log" 2>&1
  echo "profile exit $? (the whole profile: $LOG/gpu_profile.log)"
  grep -E "^==|jit step|replay|kernels \(|eager step" "$LOG/gpu_profile.log"
fi
echo "== done in ${SECONDS} s: NCCL $nccl; tests exit $test_rc, benchmark exit $bench_rc"
[ $test_rc -eq 0 ] && [ $bench_rc -eq 0 ] && [[ "$nccl" != FAILED* ]]
