r"""The synthesis engine: many samples matched to a target's scattering covariances at once.

Variables: the ``m >= 0`` coefficients of ``count`` real fields, as one real array
``x (count, 2, L, L)`` (:mod:`synthesis.params`). Loss of sample ``i``: the weighted L2 distance
between its normalised covariances and the target's (:mod:`synthesis.loss`; the normalisation
comes from the target), plus an optional pixel-PDF term, ``vmap``-ed over the batch.

Targets: one field, or an ensemble (the target statistics are the members' mean, their
spread the default per-entry weights); with a ``mask`` the target's statistics are taken over
its observed sky (``op.scatter(..., mask=)``) and the samples' over the full sky, so the
samples are full-sky fields whose statistics match the observed sky's. With ``constrained``
the samples are the target where observed and the free field in the masked region
(:func:`synthesis.params.complete`), each completed map's full-sky statistics matched to its
own observed-sky statistics: inpainting. With ``second_flm`` the samples are pairs
(``x (count, 2, 2, L, L)``); the loss adds the second field's terms and the pair's cross
statistics.

The optax optimiser minimises the batch's total loss ``sum_i loss_i`` (:mod:`synthesis.optim`:
Adam then moves every sample exactly as alone; L-BFGS shares its line search and curvature
pairs across the batch). The reported loss is the mean over the batch, ``sum_i loss_i / count``.

Execution: ``chunk`` optimisation steps run inside one compiled function (``lax.scan``,
:mod:`synthesis.steps`),
compiled once per run and called repeatedly (the operator ``op`` and the target statistics are
arguments, not constants). Between calls the host records the losses, reports progress and
calls ``callback`` (which renders frames in the CLI) (:mod:`synthesis.loop`). A step budget, a
relative tolerance (mean loss ``<= tolerance *`` initial mean loss), a callback returning
``True`` or Ctrl-C end the run; on Ctrl-C the result holds the last complete chunk and
``stopped == "interrupted"``. A loss that turns NaN or infinite raises :class:`Diverged`.

Devices (:mod:`synthesis.devices`): with several, the per-sample losses are computed under
``jax.shard_map`` (each device its own samples), ``x`` and the batch-shaped optimiser state
split over the mesh, ``count`` padded with rows whose loss counts 0 and whose gradient is 0.

Checkpoints: with ``checkpoint=path`` the run's state is written between chunks
(:mod:`synthesis.checkpoint`); :func:`resume` rebuilds the problem from the file (:func:`_prepare`,
the same as a fresh run) and continues with the same compiled chunk: same samples, bit for bit.
"""

from __future__ import annotations

import dataclasses
import functools
import time
from typing import Callable

import jax
import jax.numpy as jnp
import numpy as np
import s2scat_core
from s2scat_core import harmonics
from s2scat_core._checks import check_int

from . import loss as loss_terms
from . import checkpoint, inputs, loop, optim, params
from . import devices as devices_mod
from . import stages as stages_module
from .loop import Diverged
from .loss import weight_vector
from .steps import _Carry, _chunk_function, _Consts, _samples, _Second, _strong, _view

__all__ = ["Diverged", "Progress", "SynthesisResult", "resolve_mode", "resume", "synthesize"]


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
    _op: object
    _consts: object
    _count: int | None = None  # the real samples among _x's rows (the rest: padding)

    def samples(self) -> np.ndarray:
        """The current samples, ``(count, L, 2L-1)`` complex (computed on demand; completed
        fields when constrained, the first fields of pairs)."""
        return _samples(self._op, self._x, self._consts)[:self._count]

    def free(self) -> np.ndarray:
        """The current free fields (``(count, L, 2L-1)``): a constrained run's masked region
        comes from them, a pair's second fields are them; otherwise :meth:`samples`."""
        other = _view(self._op, jnp.asarray(self._x), self._consts)[1]
        return devices_mod.to_host(harmonics.full_from_half(other))[:self._count]


@dataclasses.dataclass(frozen=True)
class SynthesisResult:
    """Outcome of :func:`synthesize`.

    ``samples (count, L, 2L-1)``: the fields, s2fft layout. ``history (steps + 1,)``: the mean
    loss of the samples before each step, last entry after the last step. ``sample_losses
    (k, count)`` and ``timeline (k, 2)``: the loss of each sample, and (step, seconds since the
    start, compilation included; a resumed run's clock goes on), at each chunk boundary; row 0
    is the start. ``stopped``: ``"steps"``, ``"tolerance"``, ``"callback"``, ``"interrupted"``,
    or ``"diverged"`` (the last finite chunk, :attr:`Diverged.result`). ``free (count, L, 2L-1)``:
    with ``constrained``, the free fields whose masked region completes the target (``samples``
    are then the completed fields' coefficients, by the GL quadrature), else ``None``.
    ``second (count, L, 2L-1)``: a pair's second fields (``samples`` the first), else ``None``.
    ``devices``: how many devices the batch was sharded over (:mod:`synthesis.devices`).
    """

    samples: np.ndarray
    history: np.ndarray
    sample_losses: np.ndarray
    timeline: np.ndarray
    stopped: str
    mode: str
    wall_time: float
    free: np.ndarray | None = None
    second: np.ndarray | None = None
    devices: int = 1

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


def synthesize(target_flm, L: int, N: int, J_min: int = 0, *, optimizer: str = "lbfgs",
               steps: int = 100, count: int = 1, seed: int = 0, learning_rate: float = 0.05,
               schedule: str = "cosine", final_lr_fraction: float = 0.01, memory: int = 10,
               linesearch_steps: int = 20, init: str = "power", precondition: bool = True,
               weights=None, tolerance: float = 0.0, chunk: int = 10, mode: str = "auto",
               isotropic: bool = False, delta_j: int | None = None, same_scale: bool = True,
               mask=None, apodisation: float | None = None, constrained: bool = False,
               pdf_weight: float = 0.0, entry_weights: str = "auto", second_flm=None,
               cross_weight: float = 1.0, callback: Callable[[Progress], bool | None] | None = None,
               progress: bool = False, op=None, checkpoint=None,
               checkpoint_every: int | None = None, checkpoint_seconds: float = 60.0,
               checkpoint_info=None, devices="all", stages: int = 1) -> SynthesisResult:
    """Synthesise ``count`` real fields whose scattering covariances match the target's.

    Args:
        target_flm: ``(L0, 2L0-1)`` coefficients of a real target (s2fft layout), ``L0 >= L``,
            or ``(M, L0, 2L0-1)``: an ensemble of ``M`` targets, whose statistics are averaged
            (normalisation, preconditioner and initial power too); truncated to ``l < L``.
            Not standardised here (see :func:`synthesis.targets.standardise`).
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
        mask: ``None``, or the target's sky mask ``(L, 2L-1)`` in ``[0, 1]`` on the statistics'
            GL grid (``op.grid()``; :func:`synthesis.targets.masks.on_gl_grid` resamples a
            HEALPix mask): the target statistics are taken over its observed sky, eroded per
            scale by ``apodisation`` (:mod:`s2scat_core.masks`); the samples are full-sky.
        constrained: (with ``mask``, one target) inpainting: each sample is the target where
            the mask is 1 and the free field where it is 0 (blended between),
            :func:`synthesis.params.complete`; the loss matches its full-sky statistics to its
            own observed-sky ones (which read the synthesised region near the edges, never the
            target's fill), and the pixel-PDF term is taken over the masked region.
        pdf_weight: weight of the pixel-PDF term (``W2^2`` to the target's pixel values, in
            units of its variance, :func:`synthesis.loss.pdf_distance`); 0: none.
        entry_weights: ``"auto"`` (``1/sigma^2`` from an ensemble of >= 3 targets, else 1) or
            ``"none"``.
        second_flm: ``(L0, 2L0-1)``: synthesise pairs ``(f, g)`` jointly, ``g`` matched to this
            second target: the loss adds ``g``'s own terms and the cross statistics of the pair
            (``op.cross``) against the target pair's, weighted by ``cross_weight`` times the
            statistics' weights (``var``, ``S2``, ``S3`` for both ``S3_fg`` and ``S3_gf``,
            ``S4``). One target (no ensemble), not constrained.
        callback: called as ``callback(Progress)`` after the first evaluation and after each
            chunk; return ``True`` to stop.
        progress: draw a progress bar on stderr.
        op: a prebuilt operator for these ``(L, N, J_min, ...)`` (``mode`` is then ignored).
        checkpoint: a file (``.npz``) to which the run's state is written between chunks
            (:mod:`synthesis.checkpoint`): every ``checkpoint_every`` steps, or (``None``)
            after each chunk that ends ``checkpoint_seconds`` or more after the last write
            (and 20 times as long as it took); and at the end. :func:`resume` continues
            from it.
        checkpoint_info: a JSON-able dict (or a function returning one) stored with it.
        devices: ``"all"`` or ``N``: the batch is sharded over that many of JAX's devices
            (:mod:`synthesis.devices`; ``count`` is padded to a multiple of it, the padding
            dropped); the samples equal a one-device run's to rounding (``1e-10``).
        stages: coarse-to-fine (:mod:`synthesis.stages`): optimise at ``L / 2^(stages-1)``,
            then at twice that band-limit, ..., then at ``L``, each stage starting from the
            previous one's fields; ``steps`` is the whole budget, shared out by
            :func:`synthesis.stages.split_steps`. 1: one stage at ``L``.

    Returns:
        :class:`SynthesisResult`.

    Raises:
        synthesis.loop.Diverged: the loss turned NaN or infinite (the last checkpoint is kept).
    """
    options = dict(optimizer=optimizer, steps=steps, count=count, seed=seed,
                   learning_rate=learning_rate, schedule=schedule,
                   final_lr_fraction=final_lr_fraction, memory=memory,
                   linesearch_steps=linesearch_steps, init=init, precondition=precondition,
                   weights=weights, tolerance=tolerance, chunk=chunk, apodisation=apodisation,
                   constrained=constrained, pdf_weight=pdf_weight, entry_weights=entry_weights,
                   cross_weight=cross_weight, devices=devices)
    plan = loop.Plan.make(checkpoint, checkpoint_every, checkpoint_seconds, checkpoint_info)
    start = time.perf_counter()
    if check_int("stages", stages, minimum=1) > 1:
        if op is None:
            op_config = dict(L=check_int("L", L, minimum=2), N=N, J_min=J_min, reality=True,
                             mode=resolve_mode(mode, L), isotropic=isotropic, delta_j=delta_j,
                             dtype="float64", same_scale=same_scale)
        else:
            op_config = dataclasses.asdict(op.config)
            if op.config.L != L:
                raise ValueError(f"op was built for L={op.config.L}, not L={L}")
        return stages_module.synthesize_staged(
            target_flm, L, stages=stages, operator=op_config, op=op, mask=mask,
            second_flm=second_flm, options=options, callback=callback, progress=progress,
            plan=plan, start=start)
    if op is None:  # built by _prepare once the arguments are checked
        op = functools.partial(s2scat_core.build, L, N, J_min,
                               mode=resolve_mode(mode, check_int("L", L, minimum=2)),
                               isotropic=isotropic, delta_j=delta_j, same_scale=same_scale)
    problem = _prepare(target_flm, L, op, second_flm=second_flm, mask=mask, **options)
    return loop.drive(problem, callback=callback, progress=progress, plan=plan, start=start)


def resume(path, *, callback: Callable[[Progress], bool | None] | None = None,
           progress: bool = False, op=None, checkpoint_every: int | None = None,
           checkpoint_seconds: float | None = None, checkpoint_info=None,
           devices=None) -> SynthesisResult:
    """Continue the run whose checkpoint is ``path`` (written by :func:`synthesize` with
    ``checkpoint=path``) to its step budget, checkpointing to the same file.

    The problem is rebuilt from the checkpoint alone (its arguments, target, mask; the operator
    from its configuration unless ``op`` is given, which must have that configuration); the
    optimiser state, samples, history and clock continue where they stopped. On the same
    backend and device count the result equals, bit for bit, that of a run never interrupted.
    A finished run (step budget or tolerance reached) is returned as it stands.
    ``checkpoint_every``, ``checkpoint_seconds``: as for :func:`synthesize` (default: the
    run's); ``checkpoint_info``: replaces the stored ``info`` (default: kept); ``devices``: as
    for :func:`synthesize` (default: the run's setting). On another device count the run goes
    on (the checkpoint holds the real samples only; the padding is redone), equal to rounding.
    """
    start = time.perf_counter()
    saved = checkpoint.read(path)
    args = dict(saved.arguments)
    plan_args = args.pop("plan")
    plan = loop.Plan.make(
        path, plan_args["every"] if checkpoint_every is None else checkpoint_every,
        plan_args["seconds"] if checkpoint_seconds is None else checkpoint_seconds,
        saved.info if checkpoint_info is None else checkpoint_info)
    if "stages" in args:
        return stages_module.resume(saved, op=op, callback=callback, progress=progress,
                                    plan=plan, start=start, devices=devices)
    config = args.pop("operator")
    if op is None:
        op = s2scat_core.build(**config)
    elif dataclasses.asdict(op.config) != config:
        raise ValueError(f"op was built as {dataclasses.asdict(op.config)}, the checkpoint's "
                         f"run as {config}")
    L = args.pop("L")
    arrays = saved.arrays
    if devices is not None:
        args["devices"] = devices
    problem = _prepare(arrays["target_flm"], L, op, mask=arrays.get("mask"),
                       second_flm=arrays.get("second_flm"), **args)
    return loop.drive(problem, saved, callback=callback, progress=progress, plan=plan,
                      start=start)


@dataclasses.dataclass
class _Problem:
    """Everything a run needs to step, built by :func:`_prepare` (the same for a resumed run)."""

    op: object
    consts: _Consts       # reference still inf: the loop sets the initial loss
    carry: _Carry         # the start: x0 and a fresh optimiser state
    run_chunk: Callable   # the compiled chunk (:func:`_chunk`)
    steps: int
    label: str            # the optimiser's name, for the progress bar
    constrained: bool
    pair: bool
    arguments: dict       # what :func:`resume` needs to rebuild this problem (JSON)
    arrays: dict          # target_flm, mask, second_flm
    batch: devices_mod.Batch | None = None  # how the samples are sharded and padded
    begin: Callable | None = None  # seed -> (carry, padding): a fresh start (reseeded)

    def reseeded(self, seed: int, x0=None) -> "_Problem":
        """The same problem from ``seed``'s starting noise, or from the variables ``x0`` (the
        real samples' ``(count, ...)``, e.g. a coarser stage's, padded and placed here): the
        same target statistics, operator and compiled chunk (mocks: one compilation)."""
        carry, padding = self.begin(seed, x0)
        return dataclasses.replace(self, carry=carry, consts=self.consts._replace(
            padding=padding), arguments={**self.arguments, "seed": seed})

    @property
    def count(self) -> int:
        """The real samples (``carry`` may hold padded rows after them)."""
        return self.arguments["count"]

    def scalar(self, value) -> jax.Array:
        """A float64 scalar argument of the compiled chunk, on its devices."""
        return self.batch.devices.scalar(value) if self.batch else jnp.asarray(value, jnp.float64)

    def losses(self, values) -> np.ndarray:
        """``(count,)`` host copy of the real samples' entries of ``values (B,)``."""
        return devices_mod.to_host(values)[:self.count]

    def progress(self, step, losses, history, elapsed, carry, consts) -> Progress:
        return Progress(step, self.steps, losses, np.asarray(history), elapsed, carry.x,
                        self.op, consts, self.count)

    def result(self, carry, consts, history, per_sample, timeline, stopped, wall):
        halves, other = _view(self.op, carry.x, consts)
        samples = devices_mod.to_host(harmonics.full_from_half(halves))[:self.count]
        other = devices_mod.to_host(harmonics.full_from_half(other))[:self.count]
        timeline = np.asarray(timeline[:len(per_sample)], float).reshape(-1, 2)
        return SynthesisResult(samples, np.asarray(history), np.stack(per_sample), timeline,
                               stopped, self.op.config.mode, wall,
                               other if self.constrained else None, other if self.pair else None,
                               self.batch.devices.count if self.batch else 1)


def _prepare(target_flm, L, op, *, optimizer, steps, count, seed, learning_rate, schedule,
             final_lr_fraction, memory, linesearch_steps, init, precondition, weights, tolerance,
             chunk, mask, apodisation, constrained, pdf_weight, entry_weights, second_flm,
             cross_weight, devices="all", start=None) -> _Problem:
    """Check the arguments (:func:`synthesize`), compute the target statistics, the starting
    point and the optimiser; nothing is compiled here. ``op``: the operator, or a
    ``functools.partial`` that builds it (called after the checks). With several devices the
    starting point, optimiser state, operator and constants are placed on the mesh
    (:class:`synthesis.devices.Batch`). ``start``: the variables' fields to start from instead
    of noise at the degrees they reach (:func:`synthesis.params.start_from`; a coarser
    stage's)."""
    L, count, steps, seed, chunk = inputs.check_options(
        L=L, count=count, steps=steps, seed=seed, chunk=chunk, tolerance=tolerance, init=init,
        pdf_weight=pdf_weight, entry_weights=entry_weights, cross_weight=cross_weight,
        learning_rate=learning_rate)
    members, second = inputs.check_targets(target_flm, L, second_flm, mask, constrained)
    spec = optim.OptimizerSpec(optimizer, float(learning_rate), schedule, float(final_lr_fraction),
                               steps, check_int("memory", memory, minimum=1),
                               check_int("linesearch_steps", linesearch_steps, minimum=1))
    w = weight_vector(weights)
    if isinstance(op, functools.partial):
        op = op()
    if op.config.L != L:
        raise ValueError(f"op was built for L={op.config.L}, not L={L}")
    mesh = devices_mod.resolve(devices, callbacks=op.config.mode in devices_mod.CALLBACK_MODES)

    # Target statistics (the members' mean) and the starting point.
    prepared = None if mask is None else op.mask(mask, apodisation)
    norm = jnp.mean(op.norm(members, mask=prepared), axis=0)
    per_member = op.scatter(members, norm=norm, mask=prepared)
    target_cov = tuple(jnp.mean(s, axis=0) for s in per_member)
    entry = (loss_terms.entry_weights(per_member)
             if entry_weights == "auto" and members.shape[0] >= 3 else None)
    power = params.power_spectrum(members).mean(axis=0)
    scale = params.scales_from_power(power, precondition)
    completion = pdf = None
    observed = None if mask is None else inputs.masks_on_grid(mask, L)
    if constrained:
        completion = (jnp.asarray(observed), op.to_map(members[0]))
    if pdf_weight > 0:
        maps = np.asarray(op.to_map(members))
        area = s2scat_core.transforms.gl_weights(L)
        pdf = loss_terms.target_pdf(maps, area, observed,
                                    region=1 - observed if constrained else None)
    pair = None
    if second_flm is not None:
        g = second[0]
        norm_g = op.norm(g, mask=prepared)
        power_g = params.power_spectrum(g)
        scale_g = params.scales_from_power(power_g, precondition)
        area = s2scat_core.transforms.gl_weights(L)
        pdf_g = (loss_terms.target_pdf(np.asarray(op.to_map(g)), area, observed)
                 if pdf_weight > 0 else None)
        cw = np.asarray(w)[[1, 3, 4, 4, 5]] * float(cross_weight)
        pair = _Second(norm_g, tuple(op.scatter(g, norm=norm_g, mask=prepared)),
                       jnp.asarray(scale_g), pdf_g,
                       tuple(op.cross(members[0], g, norm=(norm, norm_g), mask=prepared)),
                       jnp.asarray(cw))
    opt = optim.build(spec)
    batch = devices_mod.Batch.of(mesh, count)

    def noise(seed):  # the seed's starting variables
        if pair is None:
            return params.initial(jax.random.key(seed), count, L, power, scale, init)
        keys = jax.random.split(jax.random.key(seed))
        return jnp.stack([params.initial(keys[0], count, L, power, scale, init),
                          params.initial(keys[1], count, L, power_g, scale_g, init)], axis=1)

    def begin(seed, x0=None):  # the start (the seed's noise, or x0): (carry, padding), placed
        x0 = noise(seed) if x0 is None else jnp.asarray(x0, jnp.float64)
        padding, x0 = batch.padding(x0), batch.pad(x0)  # zero rows: their loss reads the fill
        return batch.place(_strong(_Carry(x0, opt.init(x0), jnp.asarray(0), jnp.asarray(False),
                                          jnp.asarray(jnp.nan))), x0.shape), padding

    carry, padding = begin(seed, None if start is None else params.start_from(
        start, noise(seed), [scale] if pair is None else [scale, scale_g]))
    consts = mesh.replicate(_strong(_Consts(
        norm, target_cov, w, jnp.asarray(scale), jnp.asarray(jnp.inf),
        jnp.asarray(float(tolerance)), entry, completion, pdf, jnp.asarray(float(pdf_weight)),
        prepared if constrained else None, pair)))._replace(padding=padding)
    run_chunk = (_chunk_function(spec, chunk) if mesh.mesh is None
                 else _chunk_function(spec, chunk, batch))
    arguments = dict(
        L=L, operator=dataclasses.asdict(op.config), optimizer=optimizer, steps=steps,
        count=count, seed=seed, learning_rate=float(learning_rate), schedule=schedule,
        final_lr_fraction=float(final_lr_fraction), memory=memory,
        linesearch_steps=linesearch_steps, init=init, precondition=bool(precondition),
        weights=None if weights is None else {k: float(v) for k, v in weights.items()},
        tolerance=float(tolerance), chunk=chunk, apodisation=apodisation,
        constrained=bool(constrained), pdf_weight=float(pdf_weight),
        entry_weights=entry_weights, cross_weight=float(cross_weight),
        devices=devices if isinstance(devices, (str, int)) else mesh.count)
    arrays = {"target_flm": np.asarray(members), "mask": None if mask is None else
              np.asarray(mask), "second_flm": None if pair is None else np.asarray(second[0])}
    return _Problem(mesh.replicate(op), consts, carry, run_chunk, steps, optimizer,
                    bool(constrained), pair is not None, arguments, arrays, batch, begin)
