r"""The synthesis engine: many samples matched to a target's scattering covariances at once.

Variables: the ``m >= 0`` coefficients of ``count`` real fields, as one real array
``x (count, 2, L, L)`` (:mod:`synthesis.params`). Loss of sample ``i``: the weighted L2 distance
between its normalised covariances and the target's (:mod:`synthesis.loss`; the normalisation
comes from the target). Each sample is optimised by its own optax optimiser
(:mod:`synthesis.optim`), the ``count`` updates ``vmap``-ed into one computation.

Execution: ``chunk`` optimisation steps run inside one compiled function (``lax.scan``),
compiled once per run and called repeatedly (the operator ``op`` and the target statistics are
arguments, not constants). Between calls the host records the losses, reports progress and
calls ``callback`` (which renders frames in the CLI). A step budget, a relative tolerance
(``loss <= tolerance * initial loss`` freezes a sample; the run stops when all are frozen), a
callback returning ``True`` or Ctrl-C end the run; on Ctrl-C the result holds the last complete
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


def resolve_mode(mode: str = "auto") -> str:
    """``"auto"``: ``"ducc"`` when that backend is registered and JAX runs on the CPU, else
    ``"precompute"``; any other value must be a name in ``s2scat_core.transforms.BACKENDS``."""
    backends = s2scat_core.transforms.BACKENDS
    if mode == "auto":
        return "ducc" if "ducc" in backends and jax.default_backend() == "cpu" else "precompute"
    if mode not in backends:
        raise ValueError(f"mode must be 'auto' or one of {sorted(backends)}, got {mode!r}")
    return mode


@dataclasses.dataclass(frozen=True)
class Progress:
    """What the callback sees between chunks.

    ``step``: steps done; ``steps``: the budget; ``losses (count,)``: loss of each sample now;
    ``history (step + 1, count)``: the loss of each sample before each step so far (last row =
    ``losses``); ``elapsed``: seconds since the start (compilation included).
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

    ``samples (count, L, 2L-1)``: the fields, s2fft layout. ``history (steps + 1, count)``: loss
    of each sample before each step, last row after the last step. ``timeline (k, 2)``: (step,
    seconds since start) at each chunk boundary, row 0 after the first evaluation. ``stopped``:
    ``"steps"``, ``"tolerance"``, ``"callback"`` or ``"interrupted"``.
    """

    samples: np.ndarray
    history: np.ndarray
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
        return self.history[0]

    @property
    def final_loss(self) -> np.ndarray:
        return self.history[-1]


class _Carry(NamedTuple):
    x: jax.Array          # (B, 2, L, L) variables
    state: object         # per-sample optimiser state (leading axis B)
    step: jax.Array       # () int, steps taken
    done: jax.Array       # (B,) bool, frozen by the tolerance
    last: jax.Array       # (B,) loss before the last step taken


class _Consts(NamedTuple):
    norm: jax.Array       # (nJ, 2N-1) target normalisation
    target: tuple         # target Covariances (normalised)
    weights: jax.Array    # (6,)
    scale: jax.Array      # (L,) preconditioner
    reference: jax.Array  # (B,) initial loss of each sample
    tolerance: jax.Array  # () relative tolerance (0: none)


def _samples(x, scale) -> np.ndarray:
    half = params.to_half(jnp.asarray(x), scale)
    return np.asarray(harmonics.full_from_half(half))


def _where(mask, new, old):
    """Per-sample select over a pytree whose leaves have a leading batch axis."""
    def pick(a, b):
        m = mask.reshape(mask.shape + (1,) * (a.ndim - 1))
        return jnp.where(m, a, b)
    return jax.tree_util.tree_map(pick, new, old)


def _chunk(op, carry: _Carry, consts: _Consts, budget, *, spec, step_fn, length: int):
    """``length`` optimisation steps (those with ``step < budget``), then the loss at the end.

    Returns ``(carry, values (length, B), taken (length,), final (B,))``: ``values[t]`` the loss
    before step ``t`` of the chunk, ``taken[t]`` whether that step ran. With a state that
    stores the loss (L-BFGS), ``final`` is read from it; a state that does not hold valid values
    yet (before step 0) gets them here, with one batched ``value_and_grad`` behind a ``cond``
    on the whole batch (a real branch, not a ``vmap``-ed select).
    """
    def loss_fn(xi):
        return covariance_loss(op, params.to_half(xi, consts.scale), consts.norm, consts.target,
                               consts.weights)

    vstep = jax.vmap(lambda xi, si: step_fn(xi, si, loss_fn))
    if optim.stores_value(spec):
        def fresh(c: _Carry):
            value, grad = jax.vmap(jax.value_and_grad(loss_fn))(c.x)
            return c._replace(state=optim.store_value_and_grad(c.state, value, grad))

        stored, _ = optim.stored_value_and_grad(carry.state)
        carry = jax.lax.cond(jnp.all(jnp.isfinite(stored)), lambda c: c, fresh, carry)

    def take(c: _Carry):
        new_x, new_state, value = vstep(c.x, c.state)
        done = c.done | ((consts.tolerance > 0) & (value <= consts.tolerance * consts.reference))
        keep = ~done
        out = _Carry(_where(keep, new_x, c.x), _where(keep, new_state, c.state), c.step + 1,
                     done, value)
        return out, (value, True)

    def skip(c: _Carry):
        return c, (c.last, False)

    def body(c: _Carry, _):
        go = (c.step < budget) & ~jnp.all(c.done)
        return jax.lax.cond(go, take, skip, c)

    carry, (values, taken) = jax.lax.scan(body, carry, None, length=length)
    if optim.stores_value(spec):
        final = optim.stored_value_and_grad(carry.state)[0]
    else:
        final = jax.vmap(loss_fn)(carry.x)
    return carry, values, taken, final


def synthesize(target_flm, L: int, N: int, J_min: int = 0, *, optimizer: str = "lbfgs",
               steps: int = 100, count: int = 1, seed: int = 0, learning_rate: float = 0.05,
               schedule: str = "cosine", final_lr_fraction: float = 0.01, memory: int = 10,
               linesearch_steps: int = 20, init: str = "power", precondition: bool = True,
               weights=None, tolerance: float = 0.0, chunk: int = 10, mode: str = "auto",
               isotropic: bool = False, delta_j: int | None = None,
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
        tolerance: freeze a sample once ``loss <= tolerance * initial loss`` (0: never).
        chunk: steps per compiled call; the host wakes between chunks.
        mode: transform backend, ``"auto"`` (:func:`resolve_mode`) or a registered name.
        isotropic, delta_j: options of the statistics.
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
        mode = resolve_mode(mode)
        op = s2scat_core.build(L, N, J_min, mode=mode, isotropic=isotropic, delta_j=delta_j)
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
    state0 = jax.vmap(opt.init)(x0)
    carry = _strong(_Carry(x0, state0, jnp.asarray(0), jnp.zeros(count, bool),
                           jnp.full(count, jnp.nan)))
    consts = _strong(_Consts(norm, target_cov, w, jnp.asarray(scale), jnp.full(count, jnp.inf),
                             jnp.asarray(float(tolerance))))
    run_chunk = jax.jit(functools.partial(_chunk, spec=spec, step_fn=optim.make_step(spec, opt),
                                          length=chunk))

    bar = ProgressBar(steps, label=f"{optimizer} ") if progress else None
    rows: list[np.ndarray] = []
    timeline: list[tuple[int, float]] = []
    stopped = "steps"
    try:
        # Budget 0: no step runs, only the loss at the start (same compiled function).
        carry, _, _, final = run_chunk(op, carry, consts, np.int64(0))
        losses = np.asarray(final)
        rows.append(losses)
        consts = consts._replace(reference=jnp.asarray(losses))
        initial = float(losses.mean())
        timeline.append((0, time.perf_counter() - start))
        _check_finite(losses, 0)
        if bar:
            bar.update(0, initial, initial, None, final=steps == 0)
        if callback and callback(_progress(0, steps, rows, start, carry.x, scale)):
            stopped = "callback"
        done_steps = 0
        while stopped == "steps" and done_steps < steps:
            t0 = time.perf_counter()
            new = run_chunk(op, carry, consts, np.int64(steps))
            values, taken, final = (np.asarray(a) for a in new[1:])
            carry = new[0]
            ran = values[taken]  # losses before the steps just taken
            if len(ran):  # rows[t]: loss before step t; the last row: the loss now
                rows[-1] = ran[0]
                rows.extend(ran[1:])
                rows.append(final)
            done_steps += int(taken.sum())
            now = time.perf_counter()
            timeline.append((done_steps, now - start))
            _check_finite(final, done_steps)
            if bar:
                rate = taken.sum() / max(now - t0, 1e-9)
                bar.update(done_steps, float(final.mean()), initial, rate,
                           final=done_steps >= steps or bool(np.all(carry.done)))
            if callback and callback(_progress(done_steps, steps, rows, start, carry.x, scale)):
                stopped = "callback"
            elif bool(np.all(np.asarray(carry.done))):
                stopped = "tolerance"
            elif not taken.any():
                break
    except KeyboardInterrupt:
        stopped = "interrupted"
    finally:
        if bar:
            bar.close()
    history = np.stack(rows)
    return SynthesisResult(_samples(carry.x, scale), history, np.asarray(timeline, float),
                           stopped, mode, time.perf_counter() - start)


def _progress(step, steps, rows, start, x, scale) -> Progress:
    history = np.stack(rows)
    return Progress(step, steps, history[-1], history, time.perf_counter() - start, x, scale)


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
