"""Synthesis speed against S2SCAT 0.0.3's ``build_generator`` (Adam, 200 steps, lr 1e-3).

Run with the environment that has both packages:

    .venv-parity/bin/python benchmarks/bench_synthesis.py [--L 64] [--steps 200] [--modes precompute ducc]

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


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--L", type=int, default=64)
    parser.add_argument("--N", type=int, default=3)
    parser.add_argument("--J-min", type=int, default=2, dest="J_min")
    parser.add_argument("--steps", type=int, default=200, help="S2SCAT's Adam steps")
    parser.add_argument("--lr", type=float, default=1e-3, help="S2SCAT's learning rate")
    parser.add_argument("--modes", nargs="+", default=["auto"],
                        help="this project's transform backends to run (e.g. precompute ducc)")
    args = parser.parse_args()
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
