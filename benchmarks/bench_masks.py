"""Cost of a masked gradient against an unmasked one, and of a constrained (inpainting) one.

For each band-limit L and backend mode, in a fresh process: the gradient of S2SCAT's synthesis
loss ``sum_s mean((S_s(x) - S_s(t))^2)`` over the six normalised statistics,
``jax.jit(jax.grad(loss))``, median of steady calls, for

* ``unmasked``: ``op.scatter(x, norm)`` (each backend's fastest path; ``ducc``: the two
  layers on the host, Gram matrices only into XLA);
* ``masked``: ``op.scatter(x, norm, mask=w)`` with a galactic band ``|b| < 20 deg`` (the maps
  path every backend shares: first and second layers as maps, weighted sums in XLA);
* ``constrained``: the inpainting loss of the engine: the completed map
  ``c = op.from_map(m t + (1 - m) op.to_map(x))``, its full-sky statistics against its own
  masked ones (``unmasked`` + ``masked`` + one synthesis and one analysis at L).

N = 3, J_min = 2, same_scale (the synthesis defaults), reality.

    python benchmarks/bench_masks.py --L 64 128 256 --modes ducc precompute \\
        --json benchmarks/results/masks_cpu.json
"""

from __future__ import annotations

import argparse
import json
import platform
import resource
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
CASES = ("unmasked", "masked", "constrained")


def _inpainting(op, x, observed, target_map, norm, prepared, distance):
    """The constrained loss of the engine: the completed map's full-sky statistics against its
    own observed-sky ones."""
    c = op.from_map(observed * target_map + (1 - observed) * op.to_map(x))
    return distance(op.scatter(c, norm), op.scatter(c, norm, mask=prepared))


def _worker(L: int, mode: str, repeats: int) -> dict:
    import jax
    import jax.numpy as jnp
    import numpy as np

    sys.path.insert(0, str(ROOT))
    import s2scat_core
    from synthesis.targets import masks

    def field(seed):
        r = np.random.default_rng(seed)
        half = (r.standard_normal((L, L)) + 1j * r.standard_normal((L, L))) / np.sqrt(2)
        half[:, 0] = r.standard_normal(L)
        return jnp.asarray(np.tril(half) * ((np.arange(L) + 1.0) ** -1.0)[:, None])

    t0 = time.perf_counter()
    op = s2scat_core.build(L, 3, 2, mode=mode, same_scale=True)
    build = time.perf_counter() - t0
    target, x = field(1), field(2)
    band = masks.draw_gl("band", L, latitude=20.0)
    t0 = time.perf_counter()
    prepared = op.mask(band)
    mask_time = time.perf_counter() - t0
    norm = op.norm(target)
    ref = op.scatter(target, norm)
    ref_masked = op.scatter(target, norm, mask=prepared)
    observed, target_map = jnp.asarray(band), op.to_map(target)

    def distance(stats, reference):
        return sum(jnp.mean((a - b) ** 2) for a, b in zip(stats, reference))

    losses = {
        "unmasked": lambda op, x: distance(op.scatter(x, norm), ref),
        "masked": lambda op, x: distance(op.scatter(x, norm, mask=prepared), ref_masked),
        "constrained": lambda op, x: _inpainting(op, x, observed, target_map, norm, prepared,
                                                 distance),
    }
    out = {"L": L, "mode": mode, "build_s": build, "mask_prepare_s": mask_time}
    for case, loss in losses.items():
        grad = jax.jit(jax.grad(loss, argnums=1))
        t0 = time.perf_counter()
        jax.block_until_ready(grad(op, x))
        first = time.perf_counter() - t0
        times = []
        for _ in range(repeats):
            t0 = time.perf_counter()
            jax.block_until_ready(grad(op, x))
            times.append(time.perf_counter() - t0)
        out[case] = {"first_s": first, "grad_s": statistics.median(times)}
    out["peak_rss_gb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1e6
    return out


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--L", type=int, nargs="+", default=[64, 128, 256])
    p.add_argument("--modes", nargs="+", default=["ducc", "precompute"])
    p.add_argument("--repeats", type=int, default=10)
    p.add_argument("--json", default="runs/bench_masks.json")
    p.add_argument("--worker", nargs=2, metavar=("L", "MODE"), help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if args.worker:
        print(json.dumps(_worker(int(args.worker[0]), args.worker[1], args.repeats)))
        return 0
    rows = []
    for L in args.L:
        for mode in args.modes:
            done = subprocess.run([sys.executable, __file__, "--worker", str(L), mode,
                                   "--repeats", str(args.repeats)], capture_output=True, text=True)
            if done.returncode:
                print(f"L={L} {mode}: failed\n{done.stderr[-2000:]}", file=sys.stderr)
                continue
            row = json.loads(done.stdout.strip().splitlines()[-1])
            rows.append(row)
            u, m, c = (row[k]["grad_s"] for k in CASES)
            print(f"L={L:4d} {mode:10s} gradient: unmasked {u * 1e3:8.1f} ms, masked "
                  f"{m * 1e3:8.1f} ms ({m / u:4.1f}x), constrained {c * 1e3:8.1f} ms "
                  f"({c / u:4.2f}x); mask prepared in {row['mask_prepare_s']:.2f} s; peak "
                  f"{row['peak_rss_gb']:.2f} GB", flush=True)
    path = Path(args.json)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps({"machine": platform.platform(), "python": sys.version.split()[0],
                                "command": " ".join(sys.argv), "rows": rows}, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
