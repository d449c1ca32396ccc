r"""The host side of a synthesis: the compiled chunks called in turn, and what happens between.

Between two calls of the compiled chunk (:func:`synthesis.steps._chunk`) the host records the
losses, checks them, draws the progress bar, calls the callback and writes the checkpoint when
one is due. A run starts fresh (one call with a zero step budget gives the losses at the start;
it is also where the chunk is compiled) or from a checkpoint (:mod:`synthesis.checkpoint`):
the carry, history, per-sample losses, timeline and clock are restored and the same compiled
chunk continues.

Checkpoints (``Plan``): after a chunk, when ``every`` steps or more were taken since the last
one, or (``every=None``) when the chunk ends ``seconds`` or more after it, and at least
``WRITE_SHARE`` times as long as the last write took (a checkpoint of hundreds of samples takes
seconds: the writes then stay under 5 % of the run); at the end (whatever stopped the run,
Ctrl-C included) and never with a non-finite state.

Divergence: a non-finite loss (at the start, or after any step; the chunk itself stops stepping
at the first) raises :class:`Diverged` naming the step; the checkpoint on disk is the last good
one and the exception carries the result of the last finite chunk.
"""

from __future__ import annotations

import contextlib
import dataclasses
import time
from pathlib import Path
from typing import Callable

import numpy as np

from . import checkpoint as ckpt
from .devices import agree, writer
from .progress import ProgressBar

__all__ = ["Diverged", "Plan", "drive"]

#: Clock of the time-based checkpoint rule (replaceable in tests).
clock = time.monotonic
#: By time, checkpoints are at least this many times their last write's duration apart.
WRITE_SHARE = 20


class Diverged(FloatingPointError):
    """The loss turned NaN or infinite. ``step``: the first step whose loss is not finite (0:
    at the start); ``checkpoint``: the last checkpoint written (``None`` if none);
    ``result``: the :class:`synthesis.engine.SynthesisResult` of the last finite chunk (``None``
    if the start was not finite), ``stopped == "diverged"``."""

    def __init__(self, message: str, *, step: int, checkpoint=None, result=None):
        super().__init__(message)
        self.step, self.checkpoint, self.result = step, checkpoint, result


@dataclasses.dataclass(frozen=True)
class Plan:
    """Where and when to checkpoint. ``path``: the file (``None``: never); ``every``: steps
    between checkpoints (``None``: by time); ``seconds``: the time rule's interval; ``info``:
    a JSON-able dict, or a function returning one, stored with each checkpoint."""

    path: Path | None = None
    every: int | None = None
    seconds: float = 60.0
    info: dict | Callable[[], dict] | None = None

    @classmethod
    def make(cls, path, every, seconds, info) -> "Plan":
        """Checked arguments (errors name ``checkpoint_every`` / ``checkpoint_seconds``)."""
        from s2scat_core._checks import check_int

        if every is not None:
            every = check_int("checkpoint_every", every, minimum=1)
        if isinstance(seconds, bool) or not isinstance(seconds, (int, float)) or not seconds >= 0:
            raise ValueError(f"checkpoint_seconds must be a number >= 0, got {seconds!r}")
        if info is not None and not (callable(info) or isinstance(info, dict)):
            raise TypeError(f"checkpoint_info must be a dict or a function, got "
                            f"{type(info).__name__}")
        return cls(None if path is None else Path(path), every, float(seconds), info)

    def due(self, steps_since: int, seconds_since: float, write_time: float = 0.0) -> bool:
        """A checkpoint after this chunk? ``write_time``: how long the last one took."""
        if self.path is None or steps_since <= 0:
            return False
        if self.every is not None:
            return steps_since >= self.every
        return seconds_since >= max(self.seconds, WRITE_SHARE * write_time)

    @property
    def arguments(self) -> dict:
        return {"every": self.every, "seconds": self.seconds}


def _first_bad(values, taken, final) -> int | None:
    """Steps (from the chunk's start) after which the loss was first not finite, or ``None``.

    ``values[t]``: the mean loss before step ``t`` of the chunk; a chunk stops stepping at the
    first non-finite one, so the steps before it were all taken.
    """
    bad = ~np.isfinite(values)
    if bad.any():
        return int(np.argmax(bad))
    if not np.all(np.isfinite(final)):
        return int(taken.sum())
    return None


def _diverged_message(step: int, value: float, path) -> str:
    what = "NaN" if np.isnan(value) else "infinite"
    kept = f"; the last checkpoint ({path}) is kept" if path is not None else ""
    if step == 0:
        return (f"the loss is {what} at the start (step 0): check the target's scale "
                f"(standardise it: target.standardise) and the statistics' weights{kept}")
    return (f"the loss became {what} at step {step} (finite at step {step - 1}): the steps are "
            f"too large; lower the learning rate (synthesis.learning_rate with Adam) or check "
            f"the target's scale (target.standardise){kept}")


def drive(problem, saved: ckpt.Saved | None = None, *, callback=None, progress: bool = False,
          plan: Plan = Plan(), start: float | None = None):
    """Run ``problem`` (:class:`synthesis.engine._Problem`) to its step budget, from the start
    or from ``saved``; returns the :class:`synthesis.engine.SynthesisResult`."""
    now = time.perf_counter
    op, run_chunk, steps = problem.op, problem.run_chunk, problem.steps
    written = [None]  # the last checkpoint written (its path)

    if saved is None:
        start = now() if start is None else start
        carry, consts = problem.carry, problem.consts
        history, per_sample, timeline = [], [], []
        initial = None
    else:
        start = (now() if start is None else start) - saved.elapsed
        carry = ckpt.restore(problem, saved)
        initial = saved.initial
        consts = problem.consts._replace(reference=problem.scalar(initial))
        history = [float(v) for v in saved.history]
        per_sample = list(np.asarray(saved.sample_losses))
        timeline = [tuple(row) for row in np.asarray(saved.timeline)]
        written[0] = plan.path
        if saved.finished:
            return problem.result(carry, consts, history, per_sample, timeline, saved.stopped,
                                  saved.elapsed)

    def save(stopped):
        info = plan.info() if callable(plan.info) else plan.info
        began = clock()
        state = ckpt.snapshot(problem, carry, history, per_sample, timeline, initial=initial,
                              elapsed=now() - start, stopped=stopped, info=info or {},
                              plan=plan.arguments)  # (every process: it gathers the samples)
        if writer():
            ckpt.write(plan.path, state)
        written[0] = plan.path
        ended = clock()
        return int(carry.step), ended, ended - began

    def report(step):
        return problem.progress(step, per_sample[-1], history, now() - start, carry, consts)

    def diverged(step, value, good):
        result = None
        if good is not None:
            result = problem.result(good[0], consts, good[1], good[2], good[3], "diverged",
                                    now() - start)
        return Diverged(_diverged_message(step, value, written[0]), step=step,
                        checkpoint=written[0], result=result)

    bar = ProgressBar(steps, label=f"{problem.label} ") if progress else None
    stopped = None
    last_saved = (int(carry.step), clock(), 0.0)  # step, time, write time
    try:
        if saved is None:
            # Budget 0: no step runs, only the losses at the start (same compiled function).
            out = run_chunk(op, carry, consts, np.int64(0))
            carry, losses = out[0], problem.losses(out[3])
            if not np.all(np.isfinite(losses)):
                raise diverged(0, float(losses.mean()), None)
            initial = float(losses.mean())
            history.append(initial)
            per_sample.append(losses)
            consts = consts._replace(reference=problem.scalar(initial))
            timeline.append((0, now() - start))
            if bar:
                bar.update(0, initial, initial, None, final=steps == 0)
            if callback and callback(report(0)):
                stopped = "callback"
        done_steps = int(carry.step)
        while stopped is None and done_steps < steps:
            t0 = now()
            new = run_chunk(op, carry, consts, np.int64(steps))
            values, taken, final = np.asarray(new[1]), np.asarray(new[2]), problem.losses(new[3])
            bad = _first_bad(values, taken, final)
            if bad is not None:
                value = values[bad] if bad < len(values) else float(final.mean())
                raise diverged(done_steps + bad, value, (carry, history, per_sample, timeline))
            carry = new[0]
            ran = values[taken]  # mean losses before the steps just taken
            if len(ran):
                history = history[:-1] + [float(v) for v in ran] + [float(final.mean())]
                per_sample = per_sample + [final]
            done_steps += int(taken.sum())
            timeline = timeline + [(done_steps, now() - start)]
            reached = bool(carry.done)
            if bar:
                bar.update(done_steps, history[-1], initial, taken.sum() / max(now() - t0, 1e-9),
                           final=done_steps >= steps or reached)
            if callback and callback(report(done_steps)):
                stopped = "callback"
            elif reached:
                stopped = "tolerance"
            elif not taken.any():
                break
            elif done_steps < steps and agree(plan.due(done_steps - last_saved[0],
                                                       clock() - last_saved[1], last_saved[2])):
                last_saved = save(None)  # (the end's is written below)
    except KeyboardInterrupt:
        if not per_sample:  # nothing evaluated yet: nothing to return
            raise
        stopped = "interrupted"
    finally:
        if bar:
            bar.close()
    stopped = stopped or "steps"
    if plan.path is not None:
        with contextlib.suppress(KeyboardInterrupt):  # a second Ctrl-C: the last one stays
            save(stopped)
    return problem.result(carry, consts, history, per_sample, timeline, stopped, now() - start)
