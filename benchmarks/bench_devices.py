"""Throughput of mocks against the device count: mocks per hour, one batch sharded over 1, 2, 4
devices (``synthesis.devices``), each device count in its own process.

On a CPU the devices are forced host devices (``XLA_FLAGS=--xla_force_host_platform_device_count``
``= n + 1``, set in the worker's environment before JAX starts; the ``ducc`` backend, mode auto
from L = 64 on a CPU, leaves the first out of the mesh to stage its host callbacks): they split
the batch into one program per device, but share the machine's cores. On a GPU machine (``--real``) the counts are real
devices (at most ``jax.device_count()``).

Each worker runs ``s2scat-synth mocks``'s engine (:func:`synthesis.mocks.run_mocks`) on the
quickstart experiment at band-limit ``L`` (N = 3, J_min = 2, mode auto, L-BFGS, ``--count``
samples a batch, ``--steps`` steps): batch 0 compiles, the next ``--repeats`` are timed (their
median). Mocks per hour are ``count * 3600 / (seconds a step * budget)``: the median batch's
time a step times a step budget (``--budget``, 600: the quickstart's).

    python benchmarks/bench_devices.py --L 64 128 --devices 1 2 4 --json runs/bench_devices.json
    python benchmarks/bench_devices.py --real --devices 1 --L 64 128     # on a GPU machine
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def worker(L: int, devices: int, count: int, steps: int, repeats: int) -> dict:
    """One device count: batch 0 (compilation included), then ``repeats`` timed batches."""
    import jax
    import numpy as np

    from synthesis import config as cfg
    from synthesis.mocks import run_mocks

    exp = cfg.apply_overrides(cfg.Experiment(), [
        f"statistics.L={L}", f"synthesis.count={count}", f"synthesis.steps={steps}",
        f"synthesis.chunk={steps}", f"render.every={steps}", f"synthesis.devices={devices}"])
    with tempfile.TemporaryDirectory() as out:
        t0 = time.perf_counter()
        done = run_mocks(exp, out, 1 + repeats, progress=False, log=lambda m: None)
        total = time.perf_counter() - t0
        walls = []
        for path in done.written:
            with np.load(path) as z:
                walls.append(float(z["wall_time_s"]))
                taken = int(z["steps"])
    return {"L": L, "devices": devices, "platform": jax.devices()[0].platform,
            "visible": jax.device_count(), "count": count, "steps": taken,
            "first_batch_s": round(walls[0], 2), "batch_s": [round(w, 3) for w in walls[1:]],
            "step_s": float(np.median(walls[1:])) / taken, "total_s": round(total, 1),
            "cores": os.cpu_count(), "load": os.getloadavg()[0]}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--L", type=int, nargs="+", default=[64, 128])
    p.add_argument("--devices", type=int, nargs="+", default=[1, 2, 4])
    p.add_argument("--count", type=int, default=8, help="samples a batch (a multiple of each "
                   "device count keeps the devices' shares equal)")
    p.add_argument("--steps", type=int, default=20, help="L-BFGS steps a batch (measured)")
    p.add_argument("--budget", type=int, default=600, help="steps a mock takes (mocks/hour)")
    p.add_argument("--repeats", type=int, default=3, help="timed batches (their median)")
    p.add_argument("--real", action="store_true", help="real devices (GPU), no forced ones")
    p.add_argument("--timeout", type=int, default=1800)
    p.add_argument("--json", type=Path, default=None)
    p.add_argument("--worker", nargs=5, type=int, help=argparse.SUPPRESS)
    args = p.parse_args()
    if args.worker:
        print(json.dumps(worker(*args.worker)))
        return
    rows = []
    for L in args.L:
        for n in args.devices:
            env = dict(os.environ, PYTHONPATH=str(ROOT))
            if not args.real:  # one more: the first stages ducc's host callbacks
                env["XLA_FLAGS"] = (env.get("XLA_FLAGS", "") +
                                    f" --xla_force_host_platform_device_count={n + 1}").strip()
            proc = subprocess.run([sys.executable, __file__, "--worker", str(L), str(n),
                                   str(args.count), str(args.steps), str(args.repeats)], env=env,
                                  capture_output=True, text=True, timeout=args.timeout)
            if proc.returncode != 0:
                fewer = "but JAX sees" in proc.stderr
                print(f"L={L} devices={n}: " + ("skipped (fewer devices)" if fewer else
                                                 f"failed\n{proc.stderr[-2000:]}"),
                      file=sys.stderr)
                continue
            row = json.loads(proc.stdout.strip().splitlines()[-1])
            row["mocks_per_hour"] = round(row["count"] * 3600 / (row["step_s"] * args.budget), 1)
            rows.append(row)
            print(json.dumps(row), flush=True)
            if args.json:
                args.json.parent.mkdir(parents=True, exist_ok=True)
                args.json.write_text(json.dumps({"budget": args.budget, "rows": rows}, indent=1))
    base = {r["L"]: r["step_s"] for r in rows if r["devices"] == 1}
    print(f"\n| L | devices | s a step (batch of {args.count}) | mocks/hour ({args.budget} steps) "
          f"| speed-up | first batch (compile) s |\n|---|---|---|---|---|---|")
    for r in rows:
        up = f"{base[r['L']] / r['step_s']:.2f}x" if r["L"] in base else "-"
        print(f"| {r['L']} | {r['devices']} ({r['platform']}) | {r['step_s']:.3f} | "
              f"{r['mocks_per_hour']:.0f} | {up} | {r['first_batch_s']:.1f} |")


if __name__ == "__main__":
    main()
