#!/usr/bin/env bash
# GPU figures of docs/performance.md, in one go (the machine is lent by the minute):
#   1. the lognormal L = 128 experiment (synthesis wall time, steps/s, metrics);
#   2. bench_scatter.py for `precompute` and `recursive` against S2SCAT 0.0.3 (both its modes),
#      L = 128, 512, 256 in that order, each measurement in its own process, the JSON saved after
#      each one, so a run cut short keeps what it measured;
#   3. (issue 18) mocks per hour at L = 64 and 128 on the GPU (bench_devices.py --real; one
#      device: the counts above 1 are skipped when JAX sees fewer), `recursive` alone at
#      L = 1024 and 2048 (S2SCAT's published on-the-fly figure: ~18 s forward at L = 2048 on an
#      A100), and S2SCAT 0.0.3 at L = 256 and 512 in the same run. STAGES picks the parts
#      ("synth scatter devices highL"; default all); a 15-minute loan fits "devices highL".
# Needs a Python where jax sees the GPU and s2scat 0.0.3 (+ s2wav) is importable.
#   OUT=dir PYTHON=python3 bash benchmarks/gpu.sh
#   OUT=dir PYTHON=python3 STAGES="devices highL" bash benchmarks/gpu.sh   # issue 18's part
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

STAGES=${STAGES:-synth scatter devices highL}
want() { case " $STAGES " in *" $1 "*) return 0 ;; *) return 1 ;; esac; }

if [ -z "${SKIP_SYNTH:-}" ] && want synth; then
  echo "== synthesis: lognormal_l128"
  run=/tmp/lognormal_l128_gpu
  t0=$(date +%s%N)
  timeout "${SYNTH_TIMEOUT:-240}" $PY -m synthesis run lognormal_l128 --out "$run" --overwrite ${SYNTH_ARGS:-} \
      > "$OUT/synthesis.log" 2>&1
  echo "exit $? wall $(( ($(date +%s%N) - t0) / 1000000 )) ms" | tee -a "$OUT/synthesis.log"
  tail -4 "$OUT/synthesis.log"
  cp "$run/metrics.json" "$OUT/lognormal_l128_metrics.json" 2>/dev/null
fi

if want scatter; then
  echo "== scattering benchmark"
  $PY benchmarks/bench_scatter.py --L ${BENCH_L:-128 512 256} --modes precompute recursive \
      --reference-python "$PY" --reference-max-L 512 --timeout "${WORKER_TIMEOUT:-900}" \
      --impls ${IMPLS:-ours s2scat} ${BENCH_FLAGS:-} --json "$OUT/scatter_gpu.json"
fi

if want devices; then
  echo "== mocks per hour on the GPU (bench_devices.py --real)"
  timeout "${DEVICES_TIMEOUT:-300}" $PY benchmarks/bench_devices.py --real --devices 1 2 4 \
      --L 64 128 --count 16 --steps 20 --json "$OUT/devices_gpu.json" 2>&1 | tail -8
fi

if want highL; then
  echo "== recursive at L = 1024, 2048; S2SCAT 0.0.3 at L = 256, 512 (one run)"
  $PY benchmarks/bench_scatter.py --L 1024 2048 --modes recursive --impls ours --repeats 2 \
      --no-aot --timeout "${HIGHL_TIMEOUT:-420}" --json "$OUT/scatter_gpu_highL.json"
  $PY benchmarks/bench_scatter.py --L 256 512 --modes precompute recursive --impls s2scat \
      --reference-python "$PY" --reference-max-L 512 --repeats 2 --no-aot \
      --timeout "${HIGHL_TIMEOUT:-420}" --json "$OUT/scatter_gpu_s2scat_256_512.json"
fi
