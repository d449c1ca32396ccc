#!/usr/bin/env bash
# GPU figures of docs/performance.md, in one go (the machine is lent by the minute):
#   1. the lognormal L = 128 experiment (synthesis wall time, steps/s, metrics);
#   2. bench_scatter.py for `precompute` and `recursive` against S2SCAT 0.0.3 (both its modes),
#      L = 128, 512, 256 in that order, each measurement in its own process, the JSON saved after
#      each one, so a run cut short keeps what it measured.
# Needs a Python where jax sees the GPU and s2scat 0.0.3 (+ s2wav) is importable.
#   OUT=dir PYTHON=python3 bash benchmarks/gpu.sh
# Options (environment): BENCH_L ("128 512 256"), IMPLS ("ours s2scat"; "s2scat" adds only its
# rows), WORKER_TIMEOUT (900 s a process: S2SCAT's precompute build alone took 107 s at L = 128
# on the 2-core CPU), BENCH_FLAGS (e.g. --no-aot), SKIP_SYNTH=1, SYNTH_TIMEOUT, SYNTH_ARGS.
set -u
OUT=${OUT:-benchmarks/results/gpu}
PY=${PYTHON:-python3}
mkdir -p "$OUT"
export PYTHONUNBUFFERED=1
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader | tee "$OUT/device.txt"
$PY -c "import jax; from importlib.metadata import version as v; print('jax', jax.__version__, jax.devices(), 's2fft', v('s2fft'), 'optax', v('optax'))" 2>&1 | tail -1 | tee -a "$OUT/device.txt"

if [ -z "${SKIP_SYNTH:-}" ]; then
  echo "== synthesis: lognormal_l128"
  run=/tmp/lognormal_l128_gpu
  t0=$(date +%s%N)
  timeout "${SYNTH_TIMEOUT:-240}" $PY -m synthesis run lognormal_l128 --out "$run" --overwrite ${SYNTH_ARGS:-} \
      > "$OUT/synthesis.log" 2>&1
  echo "exit $? wall $(( ($(date +%s%N) - t0) / 1000000 )) ms" | tee -a "$OUT/synthesis.log"
  tail -4 "$OUT/synthesis.log"
  cp "$run/metrics.json" "$OUT/lognormal_l128_metrics.json" 2>/dev/null
fi

echo "== scattering benchmark"
$PY benchmarks/bench_scatter.py --L ${BENCH_L:-128 512 256} --modes precompute recursive \
    --reference-python "$PY" --reference-max-L 512 --timeout "${WORKER_TIMEOUT:-900}" \
    --impls ${IMPLS:-ours s2scat} ${BENCH_FLAGS:-} --json "$OUT/scatter_gpu.json"
