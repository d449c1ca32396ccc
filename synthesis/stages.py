r"""Coarse-to-fine synthesis: optimise at ``L / 2^(S-1)``, then double the band-limit, ``S`` stages.

A stage is a whole synthesis (:func:`synthesis.engine._prepare` and :func:`synthesis.loop.drive`)
at band-limit ``L_k = L / 2^(S-1-k)``, ``k = 0 .. S-1``, with the same statistics (``N``,
``J_min``, options), the target and any second field truncated to ``l < L_k``, and a mask
resampled to the stage's grid (its coefficients by the fine grid's quadrature, truncated,
synthesised on the coarse grid, clipped to ``[0, 1]``). Stage ``k + 1`` starts from stage
``k``'s fields at ``l < L_k`` and from fresh noise with the target's power at
``L_k <= l < L_{k+1}``, so only the new, finer degrees start from noise, like FOSCAT's
multi-resolution ``nstep``. A stage at ``L_k`` costs about ``(L_k / L)^2`` to ``(L_k / L)^3``
of a step at ``L``, so the coarse stages settle the large scales cheaply.

Steps: ``steps`` is the whole budget; stage ``k`` gets ``steps_k`` (:func:`split_steps`), the
coarse stages more than their share of the count since their steps are cheap. The records
(``history``, ``sample_losses``, ``timeline``) run over all stages, one step axis: the loss
jumps where a stage begins (a finer band-limit sees more of the field). The callback sees
global steps and the samples at ``L`` (a coarse stage's coefficients padded with zeros).

Checkpoints: one file for the run; each stage writes its state to it with the whole run's
description (``arguments["stages"]``: the stage, the band-limits and step counts, the records
of the stages before) and the full-resolution target and mask, so :func:`resume` continues in
the stage where the run stopped and then runs the stages after it.
"""

from __future__ import annotations

import dataclasses
import time

import numpy as np
import s2scat_core
from s2scat_core import wavelets

from . import checkpoint, loop

__all__ = ["bandlimits", "resume", "split_steps", "synthesize_staged"]

#: Share of the step budget taken by the final (full band-limit) stage; the coarse stages
#: share the rest equally.
FINAL_SHARE = 0.5


def bandlimits(L: int, stages: int, J_min: int) -> list[int]:
    """``[L_0, ..., L_{S-1} = L]``, ``L_k = ceil(L / 2^(S-1-k))``; each must keep a wavelet
    scale ``>= J_min`` (``J_min < j_max(L_k)``), else a ``ValueError`` naming ``stages``."""
    out = [-(-L // 2 ** (stages - 1 - k)) for k in range(stages)]
    if out[0] < 4 or J_min >= wavelets.j_max(out[0]):
        most = max(s for s in range(1, stages + 1)
                   if -(-L // 2 ** (s - 1)) >= 4 and J_min < wavelets.j_max(-(-L // 2 ** (s - 1))))
        raise ValueError(f"stages={stages} starts at L={out[0]}, where J_min={J_min} leaves no "
                         f"wavelet scale (j_max={wavelets.j_max(max(out[0], 2))}); at most "
                         f"{most} stage(s) at L={L}")
    return out


def split_steps(steps: int, stages: int) -> list[int]:
    """The step budget of each stage: the final stage ``round(FINAL_SHARE * steps)`` (at least
    1), the coarse stages the rest in equal parts (the first takes the remainder)."""
    final = max(1, round(FINAL_SHARE * steps)) if stages > 1 else steps
    coarse = steps - final
    each, extra = divmod(coarse, stages - 1) if stages > 1 else (0, 0)
    return [each + extra] + [each] * (stages - 2) + [final] if stages > 1 else [steps]


def resample_mask(mask, op_fine, op_coarse) -> np.ndarray:
    """A weight map on ``op_fine``'s GL grid -> on ``op_coarse``'s: coefficients by the fine
    grid's quadrature, truncated to the coarse band-limit, synthesised, clipped to ``[0, 1]``."""
    half = np.asarray(op_fine.from_map(np.asarray(mask, float)))
    Lc = op_coarse.config.L
    return np.clip(np.asarray(op_coarse.to_map(half[:Lc, :Lc])), 0.0, 1.0)


def _pad(flm, L: int):
    """``(..., L', 2L'-1)`` -> ``(..., L, 2L-1)`` with zeros at ``l >= L'``."""
    if flm is None:
        return None
    flm = np.asarray(flm)
    Ls = flm.shape[-2]
    if Ls == L:
        return flm
    out = np.zeros(flm.shape[:-2] + (L, 2 * L - 1), flm.dtype)
    out[..., :Ls, L - Ls:L - 1 + Ls] = flm
    return out


@dataclasses.dataclass
class _Records:
    """The stages' records so far on one step axis (the last stage's are added at the end)."""

    history: list = dataclasses.field(default_factory=list)   # before each step, all stages
    sample_losses: list = dataclasses.field(default_factory=list)
    timeline: list = dataclasses.field(default_factory=list)
    steps: int = 0                                            # steps of the stages done

    def add(self, result) -> None:
        self.history += list(np.asarray(result.history)[:-1])
        self.sample_losses += list(np.asarray(result.sample_losses))
        self.timeline += [(self.steps + s, t) for s, t in np.asarray(result.timeline)]
        self.steps += result.steps

    def as_json(self) -> dict:
        return {"history": [float(v) for v in self.history],
                "sample_losses": np.asarray(self.sample_losses, float).tolist(),
                "timeline": np.asarray(self.timeline, float).tolist(), "steps": self.steps}

    @classmethod
    def from_json(cls, d: dict) -> "_Records":
        return cls(list(d["history"]), [np.asarray(r) for r in d["sample_losses"]],
                   [tuple(r) for r in d["timeline"]], int(d["steps"]))

    def combine(self, result, L: int, wall: float):
        """The final (or last run) stage's result with every stage's records, at ``L``."""
        return dataclasses.replace(
            result, samples=_pad(result.samples, L), free=_pad(result.free, L),
            second=_pad(result.second, L),
            history=np.asarray(self.history + list(np.asarray(result.history))),
            sample_losses=np.stack(self.sample_losses + list(np.asarray(result.sample_losses))),
            timeline=np.asarray(self.timeline + [(self.steps + s, t) for s, t in
                                                 np.asarray(result.timeline)]).reshape(-1, 2),
            wall_time=wall)


def _callback(callback, records: _Records, total: int, L: int):
    """``callback`` seeing global steps, all stages' history and samples at ``L``."""
    if callback is None:
        return None
    from .engine import Progress

    @dataclasses.dataclass(frozen=True)
    class StageProgress(Progress):
        def samples(self):
            return _pad(super().samples(), L)

        def free(self):
            return _pad(super().free(), L)

    def wrapped(p):
        fields = {f.name: getattr(p, f.name) for f in dataclasses.fields(p)}
        fields.update(step=records.steps + p.step, steps=total,
                      history=np.asarray(records.history + list(p.history)))
        return callback(StageProgress(**fields))

    return wrapped


def synthesize_staged(target_flm, L, *, stages: int, operator: dict, op=None, mask=None,
                      second_flm=None, options: dict, callback=None, progress=False,
                      plan: loop.Plan = loop.Plan(), start: float | None = None):
    """The staged run (module doc). ``operator``: the final operator's configuration
    (:class:`s2scat_core.scattering.Config` as a dict; ``op``: that operator, if built);
    ``options``: the other arguments of :func:`synthesis.engine._prepare`, ``steps`` the whole
    budget."""
    from .inputs import check_target

    start = time.perf_counter() if start is None else start
    target_flm = np.asarray(check_target(target_flm, L))
    if second_flm is not None:
        second_flm = np.asarray(check_target(second_flm, L, name="second_flm")[0])
    Ls = bandlimits(L, stages, operator["J_min"])
    budget = split_steps(options["steps"], stages)
    description = {"bandlimits": Ls, "steps": budget, "total_steps": options["steps"],
                   "operator": operator, "L": L}
    return _run(target_flm, L, Ls, budget, description, 0, _Records(), None, None, op=op,
                mask=mask, second_flm=second_flm, options=options, callback=callback,
                progress=progress, plan=plan, start=start)


def _run(target_flm, L, Ls, budget, description, first, records, fields, saved, *, op, mask,
         second_flm, options, callback, progress, plan, start):
    """Stages ``first ..`` from ``fields`` (the previous stage's, or ``None``) and, for stage
    ``first``, the checkpoint ``saved``."""
    from .engine import _prepare

    operator = description["operator"]
    fine = op if op is not None else s2scat_core.build(**operator)
    full = {"target_flm": np.asarray(target_flm), "mask": None if mask is None else
            np.asarray(mask), "second_flm": None if second_flm is None else np.asarray(second_flm)}
    total = description["total_steps"]
    result = None
    for k in range(first, len(Ls)):
        op_k = fine if Ls[k] == L else s2scat_core.build(**{**operator, "L": Ls[k]})
        mask_k = mask if mask is None or Ls[k] == L else resample_mask(mask, fine, op_k)
        problem = _prepare(target_flm, Ls[k], op_k, mask=mask_k, second_flm=second_flm,
                           start=fields, **{**options, "steps": budget[k]})
        problem.label = f"stage {k + 1}/{len(Ls)} L={Ls[k]} {problem.label}"
        problem.arguments = {**problem.arguments, "stages": {
            **description, "index": k, "records": records.as_json(), "options": options}}
        problem.arrays = full
        resumed = saved if k == first else None
        try:
            result = loop.drive(problem, resumed, callback=_callback(callback, records, total, L),
                                progress=progress, plan=plan,
                                start=start if resumed is None else start + resumed.elapsed)
        except loop.Diverged as err:
            if err.result is not None:
                err.result = records.combine(err.result, L, time.perf_counter() - start)
            raise
        if k == len(Ls) - 1 or result.stopped in ("callback", "interrupted"):
            break
        records.add(result)
        fields = result.samples if result.free is None else result.free
        if result.second is not None:
            fields = np.stack([result.samples, result.second], axis=1)
    return records.combine(result, L, time.perf_counter() - start)


def resume(saved: checkpoint.Saved, *, op=None, callback=None, progress=False,
           plan: loop.Plan, start: float, devices=None):
    """Continue a staged run from its checkpoint ``saved``: the stage it was in, then the
    stages after it. ``start``: when the resume began (``time.perf_counter``); ``devices``:
    as for :func:`synthesis.engine.resume` (default: the run's)."""
    description = dict(saved.arguments["stages"])
    k = description.pop("index")
    records = _Records.from_json(description.pop("records"))
    options = description.pop("options")
    if devices is not None:
        options = {**options, "devices": devices}
    operator, L = description["operator"], description["L"]
    if op is not None and dataclasses.asdict(op.config) != operator:
        raise ValueError(f"op was built as {dataclasses.asdict(op.config)}, the checkpoint's "
                         f"run as {operator}")
    arrays = saved.arrays
    # the stage's own starting fields are in its checkpoint; any start of the right shape will do
    fields = None
    if k > 0:
        count = saved.x.shape[0]
        Lk = description["bandlimits"][k - 1]
        shape = (count, Lk, 2 * Lk - 1) if arrays.get("second_flm") is None else (
            count, 2, Lk, 2 * Lk - 1)
        fields = np.zeros(shape, complex)
    return _run(arrays["target_flm"], L, description["bandlimits"], description["steps"],
                description, k, records, fields, saved, op=op, mask=arrays.get("mask"),
                second_flm=arrays.get("second_flm"), options=options, callback=callback,
                progress=progress, plan=plan, start=start - saved.elapsed)
