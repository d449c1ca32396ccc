"""Scattering covariances: this project against S2SCAT 0.0.3, one run, same machine.

For each band-limit L and backend mode, a fresh process (so peak memory is its own) measures:

* build: ``s2scat_core.build(...)`` / ``s2scat.configure(...)``;
* first forward: the normalisation and target statistics, the first calls (compilation
  included); first gradient: the first call of the gradient (compilation included);
* compile: trace, lower and compile, ahead of time (``jax.jit(f).lower(...).compile()``, no
  run) of the normalisation, the forward and the gradient, on fresh functions after the
  timings (so nothing is reused from the calls above);
* forward / gradient: median of steady calls;
* peak memory: the process's maximum resident set size, read before the ahead-of-time
  compiles; on a GPU, the device allocator's high-water mark (``peak_bytes_in_use``) instead.

The gradient is that of S2SCAT's synthesis loss, ``sum_i mean((S_i(x) - S_i(target))^2)`` over
the six normalised statistics, ``jax.jit(jax.grad(loss))``. N = 3, J_min = 0, reality.

    python benchmarks/bench_scatter.py --L 32 64 128 --modes precompute recursive
    python benchmarks/bench_scatter.py --L 256 512 1024 --modes ducc --repeats 3 --no-reference
    python benchmarks/bench_scatter.py --show A.json B.json --plot time.png   # tables, one plot

S2SCAT runs with ``--reference-python`` (default: ``.venv-parity/bin/python`` if present, an
environment with s2scat 0.0.3 installed as in ``.ci/run``). Results go to ``--json``.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
REFERENCE_MODES = ("precompute", "recursive")


# ----------------------------------------------------------------------------- worker side
def _field(L: int, seed: int):
    import numpy as np

    rng = np.random.default_rng(seed)
    half = (rng.standard_normal((L, L)) + 1j * rng.standard_normal((L, L))) / np.sqrt(2)
    half[:, 0] = rng.standard_normal(L)
    return np.tril(half) * ((np.arange(L) + 1.0) ** -1.0)[:, None]


def _timed(fn, repeats):
    import jax

    t0 = time.perf_counter()
    jax.block_until_ready(fn())
    first = time.perf_counter() - t0
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        jax.block_until_ready(fn())
        times.append(time.perf_counter() - t0)
    return first, statistics.median(times)


def worker(impl: str, mode: str, L: int, N: int, J_min: int, repeats: int,
           aot: bool = True) -> dict:
    import jax

    jax.config.update("jax_enable_x64", True)
    import jax.numpy as jnp

    x = jnp.asarray(_field(L, 1))
    target = jnp.asarray(_field(L, 2))
    t0 = time.perf_counter()
    if impl == "ours":
        import s2scat_core

        op = s2scat_core.build(L, N, J_min, mode=mode)
        jax.block_until_ready(op)
        build = time.perf_counter() - t0
        t0 = time.perf_counter()
        norm = op.norm(target)
        goal = jax.block_until_ready(op.scatter(target, norm))
        first_forward = time.perf_counter() - t0

        def loss(op, x):
            return sum(jnp.mean((a - b) ** 2) for a, b in zip(op.scatter(x, norm), goal))

        grad = jax.jit(jax.grad(loss, argnums=1))
        forward = lambda: op.scatter(x, norm)  # noqa: E731
        gradient = lambda: grad(op, x)  # noqa: E731

        def compile_all():  # fresh functions: nothing cached from the timed calls
            return [(lambda op, t: op.norm(t), (op, target)),
                    (lambda op, x: op.scatter(x, norm), (op, x)),
                    (jax.grad(loss, argnums=1), (op, x))]
    else:
        import s2scat

        recursive = mode == "recursive"
        config = s2scat.configure(L, N, J_min, True, recursive)
        jax.block_until_ready(config)
        build = time.perf_counter() - t0
        t0 = time.perf_counter()
        norm = s2scat.compute_norm(target, L, N, J_min, True, config, recursive)
        goal = s2scat.scatter(target, L, N, J_min, True, config, norm, recursive, False, None)
        goal = jax.block_until_ready(goal)
        first_forward = time.perf_counter() - t0

        def run(x):
            return s2scat.scatter(x, L, N, J_min, True, config, norm, recursive, False, None)

        grad = jax.jit(jax.grad(lambda x: s2scat.optimisation.l2_covariance_loss(run(x), goal)))
        forward = lambda: run(x)  # noqa: E731
        gradient = lambda: grad(x)  # noqa: E731

        def compile_all():  # the kernels (config) as arguments, not constants
            def scatter(x, c):
                return s2scat.scatter(x, L, N, J_min, True, c, norm, recursive, False, None)

            def loss(x, c):
                return s2scat.optimisation.l2_covariance_loss(scatter(x, c), goal)

            return [(lambda t, c: s2scat.compute_norm(t, L, N, J_min, True, c, recursive),
                     (target, config)),
                    (scatter, (x, config)),
                    (jax.grad(loss), (x, config))]
    _, steady_forward = _timed(forward, repeats)
    first_gradient, steady_gradient = _timed(gradient, repeats)
    rss_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # before the extra compiles
    out = dict(impl=impl, mode=mode, L=L, N=N, J_min=J_min, build_s=build,
               first_forward_s=first_forward, forward_s=steady_forward,
               first_gradient_s=first_gradient, gradient_s=steady_gradient, peak_mb=rss_mb)
    device = jax.devices()[0]
    out.update(jax=jax.__version__, device=str(device),
               device_kind=getattr(device, "device_kind", device.platform))
    if device.platform != "cpu":  # accelerator memory: the allocator's high-water mark
        stats = device.memory_stats() or {}
        if "peak_bytes_in_use" in stats:
            out["device_peak_mb"] = stats["peak_bytes_in_use"] / 2**20
    if aot:
        for name, (fn, fn_args) in zip(("norm", "forward", "gradient"), compile_all()):
            t0 = time.perf_counter()
            jax.jit(fn).lower(*fn_args).compile()
            out[f"compile_{name}_s"] = time.perf_counter() - t0
    return out


# ----------------------------------------------------------------------------- driver side
def run_one(python: str, impl: str, mode: str, L: int, args) -> dict:
    cmd = [python, __file__, "--worker", impl, "--modes", mode, "--L", str(L), "--N", str(args.N),
           "--J-min", str(args.J_min), "--repeats", str(args.repeats)] + (["--no-aot"] * (not args.aot))
    print(f"  {impl:6s} {mode:10s} L={L:5d} ...", end="", flush=True, file=sys.stderr)
    t0 = time.perf_counter()
    try:
        out = subprocess.run(cmd, capture_output=True, text=True, timeout=args.timeout)
    except subprocess.TimeoutExpired:
        print(f" timed out after {args.timeout} s", file=sys.stderr)
        return dict(impl=impl, mode=mode, L=L, error=f"timeout {args.timeout} s")
    if out.returncode != 0:
        tail = (out.stderr.strip().splitlines() or ["?"])[-1]
        print(f" failed: {tail}", file=sys.stderr)
        return dict(impl=impl, mode=mode, L=L, error=tail)
    print(f" {time.perf_counter() - t0:.0f} s", file=sys.stderr)
    return json.loads(out.stdout.strip().splitlines()[-1])


def setup_s(r: dict) -> float | None:
    """Build plus ahead-of-time compile (normalisation, forward, gradient), seconds."""
    keys = ("compile_norm_s", "compile_forward_s", "compile_gradient_s")
    return r["build_s"] + sum(r[k] for k in keys) if all(k in r for k in keys) else None


def peak_mb(r: dict) -> float:
    """Peak memory, MB: the accelerator's high-water mark when one ran, else the process's RSS."""
    return r.get("device_peak_mb", r["peak_mb"])


def table(results: list[dict]) -> str:
    ref = {(r["mode"], r["L"]): r for r in results if r["impl"] == "s2scat" and "error" not in r}
    head = ("| mode | L | build s | compile s | build+compile s | 1st fwd s | 1st grad s | fwd ms "
            "| grad ms | peak GB | S2SCAT fwd ms | S2SCAT grad ms | S2SCAT build+compile s "
            "| fwd x | grad x | build+compile ratio | memory ratio |")
    ncol = head.count("|") - 1
    lines = [head, "|" + "---|" * ncol]

    def fmt(v, spec):
        return "-" if v is None else format(v, spec)

    for r in results:
        if r["impl"] != "ours":
            continue
        if "error" in r:
            lines.append(f"| {r['mode']} | {r['L']} | {r['error']} |" + " |" * (ncol - 3))
            continue
        # S2SCAT has precompute and recursive modes; other backends are compared to precompute.
        s = ref.get((r["mode"] if r["mode"] in REFERENCE_MODES else "precompute", r["L"]))
        ours = setup_s(r)
        row = [r["mode"], r["L"], f"{r['build_s']:.2f}",
               fmt(None if ours is None else ours - r["build_s"], ".1f"), fmt(ours, ".1f"),
               f"{r['first_forward_s']:.1f}", f"{r['first_gradient_s']:.1f}",
               f"{1e3 * r['forward_s']:.1f}", f"{1e3 * r['gradient_s']:.1f}",
               f"{peak_mb(r) / 1024:.2f}"]
        if s:
            theirs = setup_s(s)
            ratio = None if ours is None or theirs is None else ours / theirs
            row += [f"{1e3 * s['forward_s']:.1f}", f"{1e3 * s['gradient_s']:.1f}", fmt(theirs, ".0f"),
                    f"{s['forward_s'] / r['forward_s']:.1f}", f"{s['gradient_s'] / r['gradient_s']:.1f}",
                    fmt(ratio, ".2f"), f"{peak_mb(r) / peak_mb(s):.2f}"]
        else:
            row += ["-"] * 7
        lines.append("| " + " | ".join(str(v) for v in row) + " |")
    return "\n".join(lines)


def describe(meta: dict) -> str:
    """Where a result file was measured, for a plot title: the accelerator, else the CPU cores."""
    kind = meta.get("device_kind", "cpu")
    return f"{meta.get('cores', '?')}-core CPU" if kind.lower() == "cpu" else kind


def plot(results: list[dict], path: Path, where: str = "2-core CPU") -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(10, 4), sharey=True)
    for ax, key, title in zip(axes, ("forward_s", "gradient_s"), ("forward", "gradient")):
        for impl, marker in (("ours", "o-"), ("s2scat", "s--")):
            for mode in sorted({r["mode"] for r in results}):
                pts = sorted((r["L"], r[key]) for r in results
                             if r["impl"] == impl and r["mode"] == mode and "error" not in r)
                if pts:
                    label = f"{'this project' if impl == 'ours' else 'S2SCAT 0.0.3'} {mode}"
                    ax.plot(*zip(*pts), marker, label=label)
        ax.set_xscale("log", base=2)
        ax.set_yscale("log")
        ax.set_xlabel("band-limit L")
        ax.set_title(f"{title} (N = 3, J_min = 0, {where})")
        ax.grid(True, which="both", alpha=0.3)
    axes[0].set_ylabel("seconds")
    axes[1].legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=120)


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--L", type=int, nargs="+", default=[32, 64, 128])
    p.add_argument("--modes", nargs="+", default=["precompute", "recursive"])
    p.add_argument("--N", type=int, default=3)
    p.add_argument("--J-min", type=int, default=0)
    p.add_argument("--repeats", type=int, default=5)
    p.add_argument("--timeout", type=int, default=1800, help="seconds per measurement process")
    p.add_argument("--no-aot", dest="aot", action="store_false",
                   help="skip the ahead-of-time compiles (the 'compile s' columns)")
    p.add_argument("--reference-python", default=str(ROOT / ".venv-parity/bin/python"))
    p.add_argument("--reference-max-L", type=int, default=128,
                   help="skip S2SCAT above this L (its build takes 10 minutes at L = 256)")
    p.add_argument("--no-reference", action="store_true")
    p.add_argument("--impls", nargs="+", choices=["ours", "s2scat"], default=["ours", "s2scat"],
                   help="which to measure (e.g. only s2scat, to add its rows in a later run)")
    p.add_argument("--json", type=Path, default=ROOT / "runs/bench_scatter.json",
                   help="where to save the results (default: runs/, which git ignores; the "
                        "figures of docs/performance.md are in benchmarks/results/)")
    p.add_argument("--plot", type=Path, default=None, help="also draw time against L")
    p.add_argument("--show", type=Path, nargs="+", default=None,
                   help="print the tables of saved --json files (and --plot them together), then exit")
    p.add_argument("--worker", choices=["ours", "s2scat"], help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if args.show:
        everything, where = [], set()
        for path in args.show:
            saved = json.loads(path.read_text())
            print(saved["meta"], "\n")
            print(table(saved["results"]), "\n")
            everything += saved["results"]
            where.add(describe(saved["meta"]))
        if args.plot:
            plot(everything, args.plot, ", ".join(sorted(where)))
        return
    if args.worker:
        print(json.dumps(worker(args.worker, args.modes[0], args.L[0], args.N, args.J_min,
                                args.repeats, args.aot)))
        return
    have_ref = not args.no_reference and shutil.which(args.reference_python) is not None
    # The driver never initialises JAX: on a GPU it would hold the memory the workers need.
    meta = dict(machine=platform.processor() or platform.machine(), cores=os.cpu_count(),
                date=time.strftime("%Y-%m-%d"), command=" ".join(sys.argv))
    args.json.parent.mkdir(parents=True, exist_ok=True)
    results, measured = [], set()

    def measure(python, impl, mode, L):  # saved after every process: a cut-off run keeps its rows
        r = run_one(python, impl, mode, L, args)
        results.append(r)
        if "device" in r and "device" not in meta:
            meta.update(jax=r["jax"], device=r["device"], device_kind=r["device_kind"])
        args.json.write_text(json.dumps(dict(meta=meta, results=results), indent=1))

    for L in args.L:
        for mode in args.modes:
            if "ours" in args.impls:
                measure(sys.executable, "ours", mode, L)
            ref_mode = mode if mode in REFERENCE_MODES else "precompute"
            if ("s2scat" in args.impls and have_ref and L <= args.reference_max_L
                    and (ref_mode, L) not in measured):
                measured.add((ref_mode, L))
                measure(args.reference_python, "s2scat", ref_mode, L)
    print(f"\n{meta}\n")
    print(table(results))
    if args.plot:
        plot(results, args.plot, describe(meta))
        print(f"\nplot: {args.plot}")


if __name__ == "__main__":
    main()
