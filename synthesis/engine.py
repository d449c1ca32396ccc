r"""The synthesis engine: many samples matched to a target's scattering covariances at once.

Variables: the ``m >= 0`` coefficients of ``count`` real fields, as one real array
``x (count, 2, L, L)`` (:mod:`synthesis.params`). Loss of sample ``i``: the weighted L2 distance
between its normalised covariances and the target's (:mod:`synthesis.loss`; the normalisation
comes from the target), ``vmap``-ed over the batch. The optax optimiser minimises the batch's
total loss ``sum_i loss_i`` (:mod:`synthesis.optim`: Adam then moves every sample exactly as
alone; L-BFGS shares its line search and curvature pairs across the batch). The reported loss
is the mean over the batch, ``sum_i loss_i / count``.

Execution: ``chunk`` optimisation steps run inside one compiled function (``lax.scan``),
compiled once per run and called repeatedly (the operator ``op`` and the target statistics are
arguments, not constants). Between calls the host records the losses, reports progress and
calls ``callback`` (which renders frames in the CLI). A step budget, a relative tolerance
(mean loss ``<= tolerance *`` initial mean loss), a callback returning ``True`` or Ctrl-C end
the run; on Ctrl-C the result holds the last complete
chunk and ``stopped == "interrupted"``.
"""

from __future__ import annotations

import dataclasses
import functools
import time
from typing import Callable, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
import s2scat_core
from s2scat_core import harmonics
from s2scat_core._checks import check_int

from . import optim, params
from .loss import covariance_loss, weight_vector
from .progress import ProgressBar

__all__ = ["Progress", "SynthesisResult", "resolve_mode", "synthesize"]


#: ``"auto"`` picks ``"ducc"`` on a CPU from this band-limit up. Below it the tabulated kernels
#: are small and ``"precompute"`` is faster (2 CPU cores, N = 3, gradient of one field: 2.3 ms
#: against 6.9 ms at L = 32, 18.1 ms against 20.7 ms at L = 64, 87.8 ms against 34.4 ms at
#: L = 128); at L = 64 ``"ducc"`` compiles in 1.5 s instead of 7.7 s, and the quickstart
#: (4 fields at L = 64, 600 L-BFGS steps) takes 53 s with it against 84 s.
DUCC_FROM_L = 64


def resolve_mode(mode: str = "auto", L: int | None = None) -> str:
    """``"auto"``: ``"ducc"`` when that backend is registered, JAX runs on the CPU and
    ``L >= DUCC_FROM_L`` (or ``L`` is not given), else ``"precompute"``; any other value must
    be a name in ``s2scat_core.transforms.BACKENDS``."""
    backends = s2scat_core.transforms.BACKENDS
    if mode == "auto":
        cpu = "ducc" in backends and jax.default_backend() == "cpu"
        return "ducc" if cpu and (L is None or L >= DUCC_FROM_L) else "precompute"
    if mode not in backends:
        raise ValueError(f"mode must be 'auto' or one of {sorted(backends)}, got {mode!r}")
    return mode


@dataclasses.dataclass(frozen=True)
class Progress:
    """What the callback sees between chunks.

    ``step``: steps done; ``steps``: the budget; ``losses (count,)``: the loss of each sample
    now; ``history (step + 1,)``: the batch's mean loss before each step so far (last entry:
    now); ``elapsed``: seconds since the start (compilation included).
    """

    step: int
    steps: int
    losses: np.ndarray
    history: np.ndarray
    elapsed: float
    _x: jax.Array
    _scale: np.ndarray

    def samples(self) -> np.ndarray:
        """The current samples, ``(count, L, 2L-1)`` complex (computed on demand)."""
        return _samples(self._x, self._scale)


@dataclasses.dataclass(frozen=True)
class SynthesisResult:
    """Outcome of :func:`synthesize`.

    ``samples (count, L, 2L-1)``: the fields, s2fft layout. ``history (steps + 1,)``: the mean
    loss of the samples before each step, last entry after the last step. ``sample_losses
    (k, count)`` and ``timeline (k, 2)``: the loss of each sample, and (step, seconds since the
    start, compilation included), at each chunk boundary; row 0 is the start. ``stopped``:
    ``"steps"``, ``"tolerance"``, ``"callback"`` or ``"interrupted"``.
    """

    samples: np.ndarray
    history: np.ndarray
    sample_losses: np.ndarray
    timeline: np.ndarray
    stopped: str
    mode: str
    wall_time: float

    @property
    def steps(self) -> int:
        return self.history.shape[0] - 1

    @property
    def partial(self) -> bool:
        return self.stopped == "interrupted"

    @property
    def initial_loss(self) -> np.ndarray:
        """``(count,)`` loss of each sample at the start."""
        return self.sample_losses[0]

    @property
    def final_loss(self) -> np.ndarray:
        """``(count,)`` loss of each sample at the end."""
        return self.sample_losses[-1]


class _Carry(NamedTuple):
    x: jax.Array          # (B, 2, L, L) variables
    state: object         # optimiser state of the batch
    step: jax.Array       # () int, steps taken
    done: jax.Array       # () bool, the tolerance was reached
    last: jax.Array       # () mean loss before the last step taken


class _Consts(NamedTuple):
    norm: jax.Array       # (nJ, 2N-1) target normalisation
    target: tuple         # target Covariances (normalised)
    weights: jax.Array    # (6,)
    scale: jax.Array      # (L,) preconditioner
    reference: jax.Array  # () initial mean loss
    tolerance: jax.Array  # () relative tolerance (0: none)


def _samples(x, scale) -> np.ndarray:
    half = params.to_half(jnp.asarray(x), scale)
    return np.asarray(harmonics.full_from_half(half))


def _chunk(op, carry: _Carry, consts: _Consts, budget, *, step_fn, length: int):
    """``length`` optimisation steps (those with ``step < budget``), then the losses at the end.

    Returns ``(carry, values (length,), taken (length,), final (B,))``: ``values[t]`` the mean
    loss over the batch before step ``t`` of the chunk, ``taken[t]`` whether that step ran,
    ``final`` the loss of each sample after the chunk.
    """
    def sample_loss(xi):
        return covariance_loss(op, params.to_half(xi, consts.scale), consts.norm, consts.target,
                               consts.weights)

    def total(x):
        return jnp.sum(jax.vmap(sample_loss)(x))

    count = carry.x.shape[0]

    def take(c: _Carry):
        x, state, value = step_fn(c.x, c.state, total)
        mean = value / count
        done = (consts.tolerance > 0) & (mean <= consts.tolerance * consts.reference)
        # a step whose starting loss already meets the tolerance is not applied
        x = jnp.where(done, c.x, x)
        state = jax.tree_util.tree_map(lambda new, old: jnp.where(done, old, new), state, c.state)
        return _Carry(x, state, c.step + jnp.where(done, 0, 1), done, mean), (mean, ~done)

    def skip(c: _Carry):
        return c, (c.last, jnp.asarray(False))

    def body(c: _Carry, _):
        return jax.lax.cond((c.step < budget) & ~c.done, take, skip, c)

    carry, (values, taken) = jax.lax.scan(body, carry, None, length=length)
    return carry, values, taken, jax.vmap(sample_loss)(carry.x)


def synthesize(target_flm, L: int, N: int, J_min: int = 0, *, optimizer: str = "lbfgs",
               steps: int = 100, count: int = 1, seed: int = 0, learning_rate: float = 0.05,
               schedule: str = "cosine", final_lr_fraction: float = 0.01, memory: int = 10,
               linesearch_steps: int = 20, init: str = "power", precondition: bool = True,
               weights=None, tolerance: float = 0.0, chunk: int = 10, mode: str = "auto",
               isotropic: bool = False, delta_j: int | None = None, same_scale: bool = True,
               callback: Callable[[Progress], bool | None] | None = None,
               progress: bool = False, op=None) -> SynthesisResult:
    """Synthesise ``count`` real fields whose scattering covariances match the target's.

    Args:
        target_flm: ``(L0, 2L0-1)`` coefficients of a real target (s2fft layout), ``L0 >= L``;
            truncated to ``l < L``. Not standardised here (see :func:`synthesis.targets.standardise`).
        L, N, J_min: band-limit, directions, first scale of the statistics
            (:func:`s2scat_core.build`).
        optimizer: ``"lbfgs"`` or ``"adam"``.
        steps: step budget; ``count``: samples; ``seed``: seed of the initial noise.
        learning_rate, schedule, final_lr_fraction: Adam's step size (in units of the
            preconditioned variables), its schedule over ``steps`` and its final/initial ratio.
        memory, linesearch_steps: L-BFGS memory and most line-search evaluations per step.
        init: ``"power"`` (Gaussian noise with the target's ``C_l``) or ``"white"``.
        precondition: optimise ``f_lm / sqrt(C_l^target)`` (:mod:`synthesis.params`).
        weights: per-statistic loss weights, dict over ``mean, var, S1..S4`` (missing: 1).
        tolerance: stop once the mean loss ``<= tolerance *`` its initial value (0: never).
        chunk: steps per compiled call; the host wakes between chunks.
        mode: transform backend, ``"auto"`` (:func:`resolve_mode`) or a registered name.
        isotropic, delta_j: options of the statistics.
        same_scale: also pair each scale with itself in S3/S4 (on by default here, unlike
            :func:`s2scat_core.build`: closer pixel skewness; ``False`` gives S2SCAT 0.0.3's
            statistics).
        callback: called as ``callback(Progress)`` after the first evaluation and after each
            chunk; return ``True`` to stop.
        progress: draw a progress bar on stderr.
        op: a prebuilt operator for these ``(L, N, J_min, ...)`` (``mode`` is then ignored).

    Returns:
        :class:`SynthesisResult`.
    """
    start = time.perf_counter()
    L = check_int("L", L, minimum=2)
    count = check_int("count", count, minimum=1)
    steps = check_int("steps", steps, minimum=0)
    seed = check_int("seed", seed, minimum=0)
    chunk = check_int("chunk", chunk, minimum=1)
    if not (isinstance(tolerance, (int, float)) and 0 <= tolerance < 1):
        raise ValueError(f"tolerance must be a number in [0, 1), got {tolerance!r}")
    if init not in ("power", "white"):
        raise ValueError(f"init must be 'power' or 'white', got {init!r}")
    target = _check_target(target_flm, L)
    spec = optim.OptimizerSpec(optimizer, float(learning_rate), schedule, float(final_lr_fraction),
                               steps, check_int("memory", memory, minimum=1),
                               check_int("linesearch_steps", linesearch_steps, minimum=1))
    w = weight_vector(weights)
    if op is None:
        mode = resolve_mode(mode, L)
        op = s2scat_core.build(L, N, J_min, mode=mode, isotropic=isotropic, delta_j=delta_j,
                               same_scale=same_scale)
    else:
        mode = op.config.mode
        if op.config.L != L:
            raise ValueError(f"op was built for L={op.config.L}, not L={L}")

    # Target statistics and the starting point.
    norm = op.norm(target)
    target_cov = tuple(op.scatter(target, norm=norm))
    scale = params.scales(target, precondition)
    x0 = params.initial(jax.random.key(seed), count, L, params.power_spectrum(target), scale, init)
    opt = optim.build(spec)
    carry = _strong(_Carry(x0, opt.init(x0), jnp.asarray(0), jnp.asarray(False),
                           jnp.asarray(jnp.nan)))
    consts = _strong(_Consts(norm, target_cov, w, jnp.asarray(scale), jnp.asarray(jnp.inf),
                             jnp.asarray(float(tolerance))))
    run_chunk = jax.jit(functools.partial(_chunk, step_fn=optim.make_step(spec, opt),
                                          length=chunk))

    bar = ProgressBar(steps, label=f"{optimizer} ") if progress else None
    history: list[float] = []            # mean loss before each step; last: the loss now
    per_sample: list[np.ndarray] = []    # loss of each sample at each chunk boundary
    timeline: list[tuple[int, float]] = []
    stopped = "steps"
    try:
        # Budget 0: no step runs, only the losses at the start (same compiled function).
        out = run_chunk(op, carry, consts, np.int64(0))
        carry, final = _strong(out[0]), out[3]
        losses = np.asarray(final)
        _check_finite(losses, 0)
        initial = float(losses.mean())
        history.append(initial)
        per_sample.append(losses)
        consts = consts._replace(reference=jnp.asarray(initial, dtype=jnp.float64))
        timeline.append((0, time.perf_counter() - start))
        if bar:
            bar.update(0, initial, initial, None, final=steps == 0)
        if callback and callback(_progress(0, steps, history, per_sample, start, carry.x, scale)):
            stopped = "callback"
        done_steps = 0
        while stopped == "steps" and done_steps < steps:
            t0 = time.perf_counter()
            new = run_chunk(op, carry, consts, np.int64(steps))
            values, taken, final = (np.asarray(a) for a in new[1:])
            carry = _strong(new[0])
            ran = values[taken]  # mean losses before the steps just taken
            if len(ran):
                history[-1] = float(ran[0])
                history.extend(float(v) for v in ran[1:])
                history.append(float(final.mean()))
                per_sample.append(final)
            done_steps += int(taken.sum())
            now = time.perf_counter()
            timeline.append((done_steps, now - start))
            _check_finite(final, done_steps)
            reached = bool(carry.done)
            if bar:
                bar.update(done_steps, history[-1], initial, taken.sum() / max(now - t0, 1e-9),
                           final=done_steps >= steps or reached)
            if callback and callback(_progress(done_steps, steps, history, per_sample, start,
                                               carry.x, scale)):
                stopped = "callback"
            elif reached:
                stopped = "tolerance"
            elif not taken.any():
                break
    except KeyboardInterrupt:
        stopped = "interrupted"
    finally:
        if bar:
            bar.close()
    timeline = np.asarray(timeline[:len(per_sample)], float)
    return SynthesisResult(_samples(carry.x, scale), np.asarray(history), np.stack(per_sample),
                           timeline, stopped, mode, time.perf_counter() - start)


def _progress(step, steps, history, per_sample, start, x, scale) -> Progress:
    return Progress(step, steps, per_sample[-1], np.asarray(history), time.perf_counter() - start,
                    x, scale)


def _strong(tree):
    """The same arrays without weak types, so that the outputs of a chunk (strongly typed)
    can be fed back without a second compilation."""
    return jax.tree_util.tree_map(lambda a: jnp.asarray(a, dtype=jnp.asarray(a).dtype), tree)


def _check_finite(losses, step):
    if not np.all(np.isfinite(losses)):
        raise ValueError(f"the loss became non-finite at step {step}; lower the learning rate "
                         f"(Adam) or check the target")


def _check_target(target_flm, L) -> jax.Array:
    flm = np.asarray(target_flm)
    if flm.ndim != 2 or flm.shape[1] != 2 * flm.shape[0] - 1:
        raise ValueError(f"target_flm must have shape (L0, 2L0-1), got {flm.shape}")
    if flm.shape[0] < L:
        raise ValueError(f"target_flm has band-limit {flm.shape[0]} < L={L}")
    if not np.all(np.isfinite(flm)):
        raise ValueError("target_flm must be finite")
    if not harmonics.is_hermitian(flm, rtol=1e-8):
        raise ValueError("target_flm must be the coefficients of a real field (Hermitian)")
    flm = harmonics.truncate(flm.astype(np.complex128), L)
    if not np.any(flm[1:]):
        raise ValueError("target_flm has no power at 1 <= l < L")
    return jnp.asarray(flm)
