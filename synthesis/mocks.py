r"""Mocks for simulation-based inference: ``K`` batches of samples, distinct seeds, one file each.

    s2scat-synth mocks CONFIG --batches K --out DIR [--start S] [--distributed] [--set ...]

Batch ``k`` (``k = S, ..., S + K - 1``) is the experiment's synthesis of ``synthesis.count``
samples from the seed ``experiment.seed + k`` (batch 0 is what ``s2scat-synth run`` makes).
The target, operator, target statistics and compiled chunk are built once
(:func:`synthesis.engine._prepare`) and every batch restarts them from its own noise
(:meth:`synthesis.engine._Problem.reseeded`): one compilation for all batches. The batch's
samples are sharded over the devices as a run's (``synthesis.devices``).

Output folder:

=====================  ========================================================================
``config.toml``        the experiment (written first); a folder holding another experiment's
                       mocks is refused (``--out`` elsewhere)
``mocks_00000.npz`` …  one per batch, written atomically: ``sample_flm (count, L, 2L-1)``
                       (s2fft layout), ``sample_maps (count, 12 nside^2)`` (HEALPix RING,
                       ``report.nside``), ``nside``, ``seed``, ``batch``, ``initial_loss`` and
                       ``final_loss (count,)``, ``steps``, ``stopped``, ``wall_time_s``,
                       ``devices``; a pair adds ``second_flm``, ``second_maps``; an inpainting
                       run ``free_flm`` (``sample_maps`` are then the target where observed)
=====================  ========================================================================

A rerun skips the batches whose file exists (a file is whole or absent), so a killed job is
resumed by running it again; Ctrl-C stops after the current chunk without writing its batch
(exit 130). No frames, GIF or report per batch.

Several hosts (``--distributed``, :func:`synthesis.devices.initialize`): process ``p`` of
``P`` takes the batches ``k % P == p`` and shards each over its own devices; the processes
never talk to each other after the start and write different files; process 0 writes
``config.toml``.
"""

from __future__ import annotations

import dataclasses
import sys
import time
from pathlib import Path

import numpy as np

from . import config as cfg
from . import devices as devices_mod
from . import engine, loop, report
from .io import write_npz, write_text
from .run import _Session

__all__ = ["MocksOutcome", "batch_file", "run_mocks"]


def batch_file(out_dir, k: int) -> Path:
    """The file of batch ``k``: ``out_dir/mocks_{k:05d}.npz``."""
    return Path(out_dir) / f"mocks_{k:05d}.npz"


@dataclasses.dataclass
class MocksOutcome:
    """What :func:`run_mocks` did: files written, batches skipped (already there), and
    ``interrupted`` (Ctrl-C: the batch in progress was not written)."""

    out_dir: Path
    written: list[Path]
    skipped: list[int]
    interrupted: bool = False


def _stderr(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


def _check_folder(out_dir: Path, text: str) -> None:
    """``out_dir`` is a folder (or nothing yet) holding this experiment's mocks or none."""
    for path in (out_dir, *out_dir.parents):
        if path.exists() and not path.is_dir():
            raise ValueError(f"--out {out_dir}: {str(path)!r} is a file, not a folder")
    config = out_dir / "config.toml"
    if config.is_file() and config.read_text(encoding="utf-8") != text:
        raise ValueError(f"--out {out_dir}: holds the mocks of another experiment "
                         f"({config} differs); choose another --out")


def run_mocks(exp: cfg.Experiment, out: str | Path, batches: int, *, start: int = 0,
              progress: bool = True, log=_stderr, distributed: bool = False) -> MocksOutcome:
    """Write the batches ``start .. start + batches - 1`` of ``exp``'s mocks to ``out`` (see
    the module doc); those already written are skipped. ``distributed``: this process takes
    its share (``k % process_count == process_index``) over its local devices."""
    for name, value, low in (("--batches", batches, 1), ("--start", start, 0)):
        if isinstance(value, bool) or not isinstance(value, int) or value < low:
            raise ValueError(f"{name} must be an integer >= {low}, got {value!r}")
    out_dir = Path(out)
    lead = devices_mod.writer()
    mode = engine.resolve_mode(exp.statistics.mode, exp.statistics.L)
    devices = devices_mod.resolve(exp.synthesis.devices, local=distributed,
                                  name="synthesis.devices",
                                  callbacks=mode in devices_mod.CALLBACK_MODES)
    if exp.synthesis.stages > 1:
        raise ValueError(f"synthesis.stages = {exp.synthesis.stages}: mocks run one stage at "
                         f"L (their compiled steps are shared by every batch); set it to 1")
    text = cfg.to_toml(exp)
    _check_folder(out_dir, text)
    mine = list(range(start, start + batches))
    if distributed:
        mine = devices_mod.assigned(mine, *devices_mod.process())
    skipped = [k for k in mine if batch_file(out_dir, k).is_file()]
    todo = [k for k in mine if k not in skipped]
    name = exp.experiment.name
    if skipped:
        log(f"[{name}] {len(skipped)} of {len(mine)} batch(es) already in {out_dir}: skipped")
    outcome = MocksOutcome(out_dir, [], skipped)
    if not todo:
        return outcome
    quiet = dataclasses.replace(exp, render=dataclasses.replace(exp.render, enabled=False))
    session = _Session(quiet, out_dir, log)  # bad input fails here, before anything is written
    if lead and not (out_dir / "config.toml").is_file():
        write_text(out_dir / "config.toml", text)
    st, sy = exp.statistics, exp.synthesis
    log(f"[{name}] target: {session.target.description}; L={st.L} N={st.N} J_min={st.J_min} "
        f"mode={session.mode}; {len(todo)} batch(es) of {sy.count} sample(s), {sy.optimizer}, "
        f"{sy.steps} steps, {devices.count} device(s)")
    options = {**session.options(), "devices": devices}
    first = engine._prepare(session.target.fields, st.L, session.op,
                            **{**options, "seed": exp.experiment.seed + todo[0]})
    for i, k in enumerate(todo):
        seed = exp.experiment.seed + k
        began = time.perf_counter()
        try:
            result = loop.drive(first.reseeded(seed) if i else first, progress=progress)
        except loop.Diverged as err:
            raise loop.Diverged(f"batch {k} (seed {seed}): {err}", step=err.step) from None
        if result.partial:
            log(f"[{name}] interrupted in batch {k}: not written; run again to continue")
            outcome.interrupted = True
            return outcome
        path = _write_batch(out_dir, k, seed, result, session, time.perf_counter() - began)
        outcome.written.append(path)
        ratio = float(np.mean(result.final_loss / result.initial_loss))
        log(f"[{name}] batch {k} (seed {seed}, {i + 1}/{len(todo)}): loss x{ratio:.1e} in "
            f"{time.perf_counter() - began:.1f} s -> {path}")
    return outcome


def _write_batch(out_dir, k, seed, result, session, wall) -> Path:
    """One batch's ``.npz`` (module doc)."""
    exp, target = session.exp, session.target
    nside = exp.report.nside or report.auto_nside(exp.statistics.L)
    extra = {}
    maps = report.healpix_maps(result.samples, nside)
    if result.free is not None:  # inpainting: the target where observed, exactly
        from .targets import masks

        weight = masks.to_nside(np.asarray(target.mask_map, float), nside)
        maps = weight * report.healpix_maps(target.flm, nside) + (1 - weight) * \
            report.healpix_maps(result.free, nside)
        extra["free_flm"] = result.free
    if result.second is not None:
        extra.update(second_flm=result.second,
                     second_maps=np.atleast_2d(report.healpix_maps(result.second, nside)))
    return write_npz(batch_file(out_dir, k), sample_flm=result.samples,
                     sample_maps=np.atleast_2d(maps), nside=nside, seed=seed, batch=k,
                     initial_loss=result.initial_loss, final_loss=result.final_loss,
                     steps=result.steps, stopped=result.stopped, wall_time_s=wall,
                     devices=result.devices, **extra)
