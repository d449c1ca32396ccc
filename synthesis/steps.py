r"""The compiled side of a synthesis: the loss of one sample and a chunk of optimiser steps.

``_sample_loss`` is the loss of one sample's variables (:mod:`synthesis.engine`'s module doc:
the weighted L2 distance of its normalised covariances to the target's, the pixel-PDF term,
a pair's second field and cross terms, an inpainted sample's completion); ``_chunk`` runs
``length`` optimiser steps on the batch's total loss in one ``lax.scan`` (its loss sharded
over a device mesh by :mod:`synthesis.devices` when there are several), and
``_chunk_function`` is its jitted form, compiled once per optimiser, chunk length and batch
layout. Nothing here wakes the host between steps; :mod:`synthesis.loop` drives the chunks.
"""

from __future__ import annotations

import functools
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
from s2scat_core import harmonics

from . import devices as devices_mod
from . import loss as loss_terms
from . import optim, params
from .loss import covariance_loss


class _Carry(NamedTuple):
    x: jax.Array          # (B, 2, L, L) variables
    state: object         # optimiser state of the batch
    step: jax.Array       # () int, steps taken
    done: jax.Array       # () bool, the tolerance was reached
    last: jax.Array       # () mean loss before the last step taken


class _Second(NamedTuple):
    """The second field of a pair: its target statistics and the pair's cross statistics."""
    norm: jax.Array       # (nJ, 2N-1) its normalisation
    target: tuple         # its Covariances (normalised)
    scale: jax.Array      # (L,) its preconditioner
    pdf: object           # its TargetPDF or None
    cross: tuple          # target CrossCovariances (normalised by both norms)
    cross_weights: jax.Array  # (5,) weights of var, S2, S3_fg, S3_gf, S4 of the cross terms


class _Consts(NamedTuple):
    norm: jax.Array       # (nJ, 2N-1) target normalisation
    target: tuple         # target Covariances (normalised)
    weights: jax.Array    # (6,)
    scale: jax.Array      # (L,) preconditioner
    reference: jax.Array  # () initial mean loss
    tolerance: jax.Array  # () relative tolerance (0: none)
    entry: tuple | None   # per-entry weights of each statistic, or None (all 1)
    completion: tuple | None  # (observed (L, 2L-1), target map (L, 2L-1)) when constrained
    pdf: loss_terms.TargetPDF | None  # the target's pixel PDF when pdf_weight > 0
    pdf_weight: jax.Array  # ()
    observed_sky: object = None  # constrained: the mask's MaskWeights (the goal: the completed
    #                             map's own observed-sky statistics)
    second: _Second | None = None  # a pair: x (B, 2 fields, 2, L, L)
    padding: tuple | None = None  # sharded batch padded: (present (B,) 1/0, fill (B, ...)):
    #                              a padded row's loss reads its fill, times 0 (devices.Batch)


def _field(op, xi, consts: _Consts):
    """Variables of one sample -> ``(half (L, L), map on the GL grid or None)``: the free field,
    or with ``completion`` the completed one (the first field of a pair)."""
    half = params.to_half(xi[0] if consts.second is not None else xi, consts.scale)
    if consts.completion is not None:
        return params.complete(op, half, *consts.completion)
    return half, None


def _pdf_term(op, half, grid_map, pdf, weight):
    if pdf is None:
        return 0.0
    grid_map = op.to_map(half) if grid_map is None else grid_map
    return weight * loss_terms.pdf_distance(grid_map, pdf)


def _sample_loss(op, xi, consts: _Consts):
    half, grid_map = _field(op, xi, consts)
    target = consts.target
    if consts.observed_sky is not None:
        target = op.scatter(half, norm=consts.norm, mask=consts.observed_sky)
    value = covariance_loss(op, half, consts.norm, target, consts.weights, consts.entry)
    value = value + _pdf_term(op, half, grid_map, consts.pdf, consts.pdf_weight)
    sec = consts.second
    if sec is not None:
        other = params.to_half(xi[1], sec.scale)
        value = value + covariance_loss(op, other, sec.norm, sec.target, consts.weights)
        value = value + _pdf_term(op, other, None, sec.pdf, consts.pdf_weight)
        cross = op.cross(half, other, norm=(consts.norm, sec.norm))
        value = value + jnp.dot(sec.cross_weights, loss_terms.terms(cross, sec.cross))
    return value


@jax.jit
def _view(op, x, consts: _Consts):
    """The samples' halves ``(B, L, L)`` (completed with ``completion``; the first field of a
    pair) and the free ones (the second field of a pair)."""
    if consts.second is not None:
        return (params.to_half(x[:, 0], consts.scale),
                params.to_half(x[:, 1], consts.second.scale))
    free = params.to_half(x, consts.scale)
    if consts.completion is None:
        return free, free
    return jax.vmap(lambda xi: _field(op, xi, consts)[0])(x), free


def _samples(op, x, consts) -> np.ndarray:
    return devices_mod.to_host(harmonics.full_from_half(_view(op, jnp.asarray(x), consts)[0]))


def _batch_losses(op, x, consts: _Consts, devices: devices_mod.Devices):
    """``(B,)`` loss of each sample of ``x (B, ...)``, each device its own samples
    (:meth:`synthesis.devices.Devices.batch_map`); a padded row's is its fill's."""
    shared = consts._replace(padding=None)
    if consts.padding is None:
        return devices.batch_map(lambda xi, o, c: _sample_loss(o, xi, c), x, op, shared)

    def one(row, o, c):
        xi, present, fill = row  # where: the gradient to a padded row is an exact 0
        return _sample_loss(o, jnp.where(present > 0, xi, fill), c)

    return devices.batch_map(one, (x, *consts.padding), op, shared)


def _chunk(op, carry: _Carry, consts: _Consts, budget, *, step_fn, length: int,
           batch: devices_mod.Batch | None = None):
    """``length`` optimisation steps (those with ``step < budget``), then the losses at the end.

    Returns ``(carry, values (length,), taken (length,), final (B,))``: ``values[t]`` the mean
    loss over the real samples before step ``t`` of the chunk, ``taken[t]`` whether that step
    ran, ``final`` the loss of each sample after the chunk. ``batch``: the samples sharded
    over a mesh (``None``: one device); a padded row's loss counts 0.
    """
    devices = batch.devices if batch is not None else devices_mod.Devices(None, 1, "")

    def losses(x):
        return _batch_losses(op, x, consts, devices)

    def total(x):
        if consts.padding is None:
            return jnp.sum(losses(x))
        return jnp.sum(consts.padding[0] * losses(x))

    count = carry.x.shape[0] if batch is None else batch.count

    def take(c: _Carry):
        x, state, value = step_fn(c.x, c.state, total)
        mean = value / count
        done = (consts.tolerance > 0) & (mean <= consts.tolerance * consts.reference)
        # a step whose starting loss already meets the tolerance, or is not finite (the host
        # then stops the run: loop.Diverged), is not applied
        done = done | ~jnp.isfinite(mean)
        x = jnp.where(done, c.x, x)
        state = jax.tree_util.tree_map(lambda new, old: jnp.where(done, old, new), state, c.state)
        return _Carry(x, state, c.step + jnp.where(done, 0, 1), done, mean), (mean, ~done)

    def skip(c: _Carry):
        return c, (c.last, jnp.asarray(False))

    def body(c: _Carry, _):
        return jax.lax.cond((c.step < budget) & ~c.done, take, skip, c)

    carry, (values, taken) = jax.lax.scan(body, carry, None, length=length)
    if batch is not None:
        carry = batch.constrain(carry, carry.x.shape)
    return carry, values, taken, losses(carry.x)


@functools.lru_cache(maxsize=16)
def _chunk_function(spec: optim.OptimizerSpec, length: int, batch=None):
    """The jitted chunk of ``length`` steps of ``spec``'s optimiser: one function per
    ``(spec, length, batch)``, so runs alike in one process (a resumed one too) share its
    compilations (the operator, target and carry are arguments; their shapes key the cache)."""
    opt = optim.build(spec)
    return jax.jit(functools.partial(_chunk, step_fn=optim.make_step(spec, opt), length=length,
                                     batch=batch))


def _strong(tree):
    """The same arrays without weak types, so that the outputs of a chunk (strongly typed)
    can be fed back without a second compilation."""
    return jax.tree_util.tree_map(lambda a: jnp.asarray(a, dtype=jnp.asarray(a).dtype), tree)
