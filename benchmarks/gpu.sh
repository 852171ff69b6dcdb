#!/usr/bin/env bash
# The GPU check in one prepared script: install taiji (no network needed), run the CUDA tests
# (tests/cuda: the real-GPU tests and the fake-device ones), then the GPU benchmark, whose
# table comes last. Made for a machine with CuPy, PyTorch and JAX preinstalled; a missing
# peer is skipped with a note. About 8 minutes at most (each phase has a time limit).
#
#   bash benchmarks/gpu.sh [gpu_bench.py options, e.g. --seconds 0.5]
#
# Environment: PYTHON (default python3), GPU_TEST_TIMEOUT / GPU_BENCH_TIMEOUT (seconds,
# default 240 each), GPU_BENCH_JSON (where to write the results as JSON; default $OUT/ when
# OUT is set), GPU_SKIP_TESTS=1 to run only the benchmark, GPU_SKIP_INSTALL=1 to use the
# taiji already importable (a dry run on CPU: GPU_SKIP_INSTALL=1 bash benchmarks/gpu.sh
# --device cpu --quick).
set -u
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
export PYTHONUNBUFFERED=1
LOG=${OUT:-/tmp}
JSON=${GPU_BENCH_JSON:-${OUT:+$OUT/gpu_bench.json}}

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
ok = taiji.cuda.is_available()
print("taiji", taiji.__version__, "| CUDA:", taiji.cuda.get_device_name() if ok
      else f"not available ({taiji.cuda.unavailable_reason()})")
EOF

test_rc=0
if [ "${GPU_SKIP_TESTS:-0}" != "1" ]; then
  echo "== tests (tests/cuda: real GPU and fake device)"
  if $PY -m pytest --version >/dev/null 2>&1; then
    par=""
    # workers compile CuPy kernels (NVRTC) in parallel on a fresh machine
    $PY -c "import xdist" >/dev/null 2>&1 && par="-n 4"
    timeout "${GPU_TEST_TIMEOUT:-240}" $PY -m pytest tests/cuda -q -p no:cacheprovider $par \
      -o addopts="" -rfE --tb=short >"$LOG/gpu_tests.log" 2>&1
    test_rc=$?
    grep -E "^(FAILED|ERROR)|Error|passed|failed|error" "$LOG/gpu_tests.log" | tail -40
    [ $test_rc -eq 124 ] && echo "tests stopped at the time limit (see $LOG/gpu_tests.log)"
  else
    echo "pytest is not installed here: tests skipped"
  fi
fi

echo "== benchmark (benchmarks/gpu_bench.py)"
timeout "${GPU_BENCH_TIMEOUT:-240}" $PY benchmarks/gpu_bench.py ${JSON:+--json "$JSON"} "$@"
bench_rc=$?
[ $bench_rc -eq 124 ] && echo "benchmark stopped at the time limit"
echo "== done: tests exit $test_rc, benchmark exit $bench_rc"
[ $test_rc -eq 0 ] && [ $bench_rc -eq 0 ]
