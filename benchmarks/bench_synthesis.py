"""Synthesis speed: against S2SCAT 0.0.3's ``build_generator``, time to quality, batches.

Three tables (``--table``), the first two with the environment that has both packages:

    .venv-parity/bin/python benchmarks/bench_synthesis.py [--L 64] [--steps 200] [--modes precompute ducc]
    .venv-parity/bin/python benchmarks/bench_synthesis.py --table quality --L 64 128 256 \
        --variants stages=1 stages=3 --s2scat-L 64 128 --json benchmarks/results/time_to_quality.json
    python benchmarks/bench_synthesis.py --table batch --L 64 128 --counts 1 4 16

``final-loss`` (the default; below). ``quality``: the wall time until a batch of ``--count``
samples *reaches quality* (:mod:`quality`: statistics as close to the target's as an
independent realisation's, C_ell within 5 %, pixel skewness within 10 %), checked at every
chunk boundary, the checks' own time excluded; each shipped experiment's target at its L
(quickstart at 64, ``lognormal_l128``, ``lognormal_l256``) with the experiment's defaults
for everything else (``--variants`` add ``key=value`` options of ``synthesize``); S2SCAT's
generator (its notebook setting, Adam lr 1e-3, ``--s2scat-steps``) on the same target, its
build and run timed, its output checked once. ``batch``: samples times steps per second of
the compiled steps (first chunk, with the compilation, left out) at each ``--counts``.

``final-loss``:

Same target for both: this project's lognormal demo field (seed 1, standardised) at L = 64,
statistics N = 3, J_min = 2, one sample, same machine, one run each. Every loss is the same
function (S2SCAT's ``l2_covariance_loss`` of the target-normalised covariances, evaluated with
``s2scat_core`` for S2SCAT's output too). Wall times include everything a user waits for:
S2SCAT's ``build_generator`` (matrices, target statistics) and generation; this project's
operator build, compilation and optimisation. Printed:

* S2SCAT: wall time (build + generate), and its final loss;
* for this project with L-BFGS and with Adam: the wall time to reach S2SCAT's final loss, the
  speed-up, and the loss reached within S2SCAT's wall time.
"""

from __future__ import annotations

import argparse
import sys
import time

import numpy as np


def s2scat_run(half, L, N, J_min, steps, lr):
    import jax
    import jax.numpy as jnp
    import s2scat

    t0 = time.perf_counter()
    generator = s2scat.build_generator(jnp.asarray(half), L, N, J_min, reality=True)
    t1 = time.perf_counter()
    out = generator(jax.random.PRNGKey(0), 1, steps, lr)
    out.block_until_ready()
    t2 = time.perf_counter()
    return np.asarray(out)[0], t1 - t0, t2 - t1


def ours(target, L, N, J_min, optimizer, budget_s, reach, max_steps, mode="auto"):
    """Run until ``budget_s`` seconds (or ``max_steps``); return the (time, loss) trace."""
    from synthesis import synthesize

    kw = dict(learning_rate=0.05, schedule="constant") if optimizer == "adam" else {}
    trace = []

    def callback(p):
        trace.append((p.elapsed, float(p.history[-1])))
        return p.elapsed >= budget_s

    r = synthesize(target, L, N, J_min, optimizer=optimizer, steps=max_steps, count=1, chunk=5,
                   seed=0, callback=callback, same_scale=False, mode=mode,  # S2SCAT's statistics
                   **kw)
    trace = np.asarray(trace)
    hit = np.nonzero(trace[:, 1] <= reach)[0]
    t_reach = float(trace[hit[0], 0]) if len(hit) else float("nan")
    before = trace[trace[:, 0] <= budget_s]
    loss_at_budget = float(before[-1, 1]) if len(before) else float("nan")
    return dict(t_reach=t_reach, loss_at_budget=loss_at_budget, steps=r.steps, mode=r.mode,
                final=float(r.history[-1]), wall=r.wall_time)


def quality_table(args) -> list[dict]:
    """Time to quality of this project's variants and S2SCAT's generator, one row each."""
    import s2scat_core

    from quality import QualityCheck
    from synthesis import config as cfg
    from synthesis import synthesize, targets
    from synthesis.targets import demo, standardise

    rows = []
    for L in args.L:
        exp = cfg.load(cfg.find_experiment(EXPERIMENT_AT.get(L, "lognormal_l128")))
        exp = exp.replace(**{"statistics.L": L, "synthesis.count": args.count})
        st, sy = exp.statistics, exp.synthesis
        target = targets.load(exp.target, L).flm
        lg = exp.target.lognormal
        reals = np.stack([standardise(demo.lognormal(L, seed=1000 + i, sigma=lg.sigma,
                                                     distance=lg.distance))
                          for i in range(args.realisations)])
        # S2SCAT's statistics (what both optimise), so the check favours neither
        check = QualityCheck.build(s2scat_core.build(L, st.N, st.J_min, same_scale=False,
                                                     mode="ducc" if L >= 64 else "precompute"),
                                   target, reals, st.J_min)
        print(f"L={L} ({exp.experiment.name}'s target), count {args.count}: floor chi2 "
              f"{check.floor:.2f}", file=sys.stderr)
        for variant in args.variants:
            options = _options(variant)
            row = _time_to_quality(exp, target, check, options, args.max_steps)
            row.update(L=L, run=f"ours {variant}", count=args.count)
            rows.append(row)
            print(f"  {row}", file=sys.stderr)
        if L in args.s2scat_L:
            row = _s2scat_quality(target, L, st.N, st.J_min, args.count, args.s2scat_steps,
                                  args.lr, check)
            row.update(L=L, run=f"S2SCAT 0.0.3 Adam lr {args.lr:g}, {args.s2scat_steps} steps",
                       count=args.count)
            rows.append(row)
            print(f"  {row}", file=sys.stderr)
    return rows


EXPERIMENT_AT = {64: "quickstart", 128: "lognormal_l128", 256: "lognormal_l256"}


def _options(variant: str) -> dict:
    """``"stages=3,same_scale=false"`` -> ``{"stages": 3, "same_scale": False}`` (numbers and
    booleans parsed)."""
    out = {}
    for item in filter(None, variant.split(",")):
        key, value = item.split("=", 1)
        if value.lower() in ("true", "false"):
            out[key] = value.lower() == "true"
            continue
        for kind in (int, float, str):
            try:
                out[key] = kind(value)
                break
            except ValueError:
                continue
    return out


def _time_to_quality(exp, target, check, options, max_steps) -> dict:
    import dataclasses

    from synthesis import synthesize

    st, sy = exp.statistics, exp.synthesis
    weights = dataclasses.asdict(sy.weights)
    pdf_weight = weights.pop("pdf")
    weights.pop("cross")
    checks = [0.0]
    reached = {}
    last = {}

    def callback(p):
        t0 = time.perf_counter()
        q = check(p.samples())
        checks[0] += time.perf_counter() - t0
        last.update(q, step=p.step, t=p.elapsed - checks[0])
        if q["reached"] and not reached:
            reached.update(last)
        return bool(reached)

    kw = dict(optimizer=sy.optimizer, steps=max_steps, count=sy.count, seed=exp.experiment.seed,
              chunk=sy.chunk, mode=st.mode, same_scale=st.same_scale, pdf_weight=pdf_weight,
              weights=weights, learning_rate=sy.learning_rate, memory=sy.memory,
              linesearch_steps=sy.linesearch_steps)
    kw.update(options)
    t0 = time.perf_counter()
    r = synthesize(target, st.L, st.N, st.J_min, callback=callback, **kw)
    wall = time.perf_counter() - t0 - checks[0]
    out = dict(mode=r.mode, wall_s=wall, steps=r.steps, options=options)
    if reached:
        out.update(time_to_quality_s=reached["t"], steps_to_quality=reached["step"],
                   chi2=reached["chi2"], floor=reached["floor"], cl_error=reached["cl_error"],
                   skewness_error=reached["skewness_error"])
    else:
        out.update(time_to_quality_s=None, chi2=last["chi2"], floor=last["floor"],
                   cl_error=last["cl_error"], skewness_error=last["skewness_error"])
    return out


def _s2scat_quality(target, L, N, J_min, count, steps, lr, check) -> dict:
    import jax
    import jax.numpy as jnp
    import s2scat
    from s2scat_core import harmonics

    t0 = time.perf_counter()
    generator = s2scat.build_generator(jnp.asarray(harmonics.half_from_full(target)), L, N,
                                       J_min, reality=True)
    t1 = time.perf_counter()
    out = jax.block_until_ready(generator(jax.random.PRNGKey(0), count, steps, lr))
    t2 = time.perf_counter()
    q = check(np.asarray(out))
    wall = t2 - t0
    return dict(mode="precompute", wall_s=wall, build_s=t1 - t0, steps=steps,
                time_to_quality_s=wall if q["reached"] else None, chi2=q["chi2"],
                floor=q["floor"], cl_error=q["cl_error"], skewness_error=q["skewness_error"])


def quality_markdown(rows) -> str:
    lines = ["| L | run | samples | time to quality | steps to quality | wall time of the run "
             "| chi2 / floor | C_l error | skewness error | speed-up vs S2SCAT's run |",
             "|---|---|---|---|---|---|---|---|---|---|"]
    # S2SCAT's time to quality, or its whole run's when it did not get there (a lower bound)
    ref = {r["L"]: (r["time_to_quality_s"] or r["wall_s"], r["time_to_quality_s"] is None)
           for r in rows if r["run"].startswith("S2SCAT")}
    for r in rows:
        t = r.get("time_to_quality_s")
        ttq = f"{t:.1f} s" if t is not None else f"not reached (> {r['wall_s']:.0f} s)"
        speed = "-"
        if t is not None and r["L"] in ref and not r["run"].startswith("S2SCAT"):
            speed = (">" if ref[r["L"]][1] else "") + f"{ref[r['L']][0] / t:.1f}x"
        lines.append(f"| {r['L']} | {r['run']} ({r['mode']}) | {r['count']} | {ttq} | "
                     f"{r.get('steps_to_quality', '-')} | {r['wall_s']:.1f} s | "
                     f"{r['chi2']:.2f} / {r['floor']:.2f} | {r['cl_error']:.1%} | "
                     f"{r['skewness_error']:.1%} | {speed} |")
    return "\n".join(lines)


def batch_table(args) -> list[dict]:
    """Samples x steps per second of the compiled steps at each batch size."""
    from synthesis import config as cfg
    from synthesis import synthesize, targets

    rows = []
    for L in args.L:
        exp = cfg.load(cfg.find_experiment(EXPERIMENT_AT.get(L, "lognormal_l128")))
        exp = exp.replace(**{"statistics.L": L})
        st, sy = exp.statistics, exp.synthesis
        target = targets.load(exp.target, L).flm
        for count in args.counts:
            r = synthesize(target, L, st.N, st.J_min, optimizer=sy.optimizer,
                           steps=args.batch_steps, count=count, chunk=args.batch_steps // 3,
                           mode=st.mode, same_scale=st.same_scale, pdf_weight=1.0)
            (s1, t1), (s2, t2) = r.timeline[1], r.timeline[-1]
            rate = (s2 - s1) / (t2 - t1)
            rows.append(dict(L=L, count=count, mode=r.mode, steps_per_s=rate,
                             sample_steps_per_s=rate * count, first_chunk_s=t1))
            print(f"  {rows[-1]}", file=sys.stderr)
    return rows


def batch_markdown(rows) -> str:
    lines = ["| L | samples | steps/s | samples x steps/s | relative to 1 sample |",
             "|---|---|---|---|---|"]
    one = {r["L"]: r["sample_steps_per_s"] for r in rows if r["count"] == 1}
    for r in rows:
        rel = f"{r['sample_steps_per_s'] / one[r['L']]:.2f}x" if r["L"] in one else "-"
        lines.append(f"| {r['L']} | {r['count']} | {r['steps_per_s']:.2f} | "
                     f"{r['sample_steps_per_s']:.2f} | {rel} |")
    return "\n".join(lines)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--table", default="final-loss", choices=("final-loss", "quality", "batch"))
    parser.add_argument("--L", type=int, nargs="+", default=None)
    parser.add_argument("--N", type=int, default=3)
    parser.add_argument("--J-min", type=int, default=2, dest="J_min")
    parser.add_argument("--steps", type=int, default=200, help="S2SCAT's Adam steps (final-loss)")
    parser.add_argument("--lr", type=float, default=1e-3, help="S2SCAT's learning rate")
    parser.add_argument("--modes", nargs="+", default=["auto"],
                        help="this project's transform backends to run (final-loss)")
    parser.add_argument("--count", type=int, default=4, help="samples (quality)")
    parser.add_argument("--variants", nargs="+", default=["stages=1"],
                        help="synthesize options of each of our runs, e.g. stages=3 (quality)")
    parser.add_argument("--max-steps", type=int, default=600, dest="max_steps",
                        help="our step budget, stopped at quality (quality)")
    parser.add_argument("--realisations", type=int, default=8,
                        help="independent realisations that set the floor (quality)")
    parser.add_argument("--s2scat-L", type=int, nargs="*", default=[], dest="s2scat_L",
                        help="band-limits at which S2SCAT's generator runs too (quality)")
    parser.add_argument("--s2scat-steps", type=int, default=300, dest="s2scat_steps")
    parser.add_argument("--counts", type=int, nargs="+", default=[1, 4, 16], help="(batch)")
    parser.add_argument("--batch-steps", type=int, default=60, dest="batch_steps", help="(batch)")
    parser.add_argument("--json", help="write the rows here")
    args = parser.parse_args()
    if args.table == "final-loss":
        args.L = (args.L or [64])[0]
        return final_loss_table(args)
    args.L = args.L or ([64, 128, 256] if args.table == "quality" else [64, 128])
    rows = quality_table(args) if args.table == "quality" else batch_table(args)
    print(quality_markdown(rows) if args.table == "quality" else batch_markdown(rows))
    if args.json:
        import json

        with open(args.json, "w") as f:
            json.dump(rows, f, indent=1)


def final_loss_table(args):
    L, N, J_min = args.L, args.N, args.J_min

    import jax.numpy as jnp
    import s2scat_core
    from s2scat_core import harmonics

    from synthesis.loss import covariance_loss, weight_vector
    from synthesis.targets import demo, standardise

    target = standardise(demo.lognormal(L, seed=1))
    print(f"target: lognormal demo field, L={L}, N={N}, J_min={J_min}; one sample each")

    sample, t_build, t_gen = s2scat_run(harmonics.half_from_full(target), L, N, J_min,
                                        args.steps, args.lr)
    op = s2scat_core.build(L, N, J_min, mode="precompute")
    norm = op.norm(target)
    tcov = op.scatter(target, norm=norm)
    s2_final = float(covariance_loss(op, jnp.asarray(sample), norm, tcov, weight_vector()))
    s2_wall = t_build + t_gen
    print(f"S2SCAT 0.0.3: build_generator {t_build:.1f} s + {args.steps} Adam steps (lr "
          f"{args.lr:g}) {t_gen:.1f} s = {s2_wall:.1f} s; final loss {s2_final:.4e}")

    rows = []
    for mode in args.modes:
        for optimizer in ("lbfgs", "adam"):
            res = ours(target, L, N, J_min, optimizer, s2_wall, s2_final, max_steps=5000, mode=mode)
            rows.append((optimizer, res))

    print()
    print(f"| run | time to S2SCAT's final loss ({s2_final:.3e}) | speed-up vs {s2_wall:.0f} s "
          f"| loss within {s2_wall:.0f} s | steps run |")
    print("|---|---|---|---|---|")
    print(f"| S2SCAT 0.0.3 Adam lr {args.lr:g} | {s2_wall:.1f} s | 1x | {s2_final:.3e} | "
          f"{args.steps} |")
    for optimizer, r in rows:
        speed = s2_wall / r["t_reach"] if np.isfinite(r["t_reach"]) else float("nan")
        print(f"| this project, {optimizer} ({r['mode']}) | {r['t_reach']:.1f} s | {speed:.1f}x | "
              f"{r['loss_at_budget']:.3e} | {r['steps']} |")


if __name__ == "__main__":
    main()
