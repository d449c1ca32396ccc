"""One experiment from start to finish: config -> target -> synthesis -> frames, GIF, report.

Output folder (every file written atomically):

==================  ===========================================================================
``config.toml``     the resolved experiment (every key, with units), written first
``frames/``         ``frame_00000.png`` ... one PNG per ``render.every`` steps (and the last step)
``synthesis.gif``   the frames as an animated GIF
``samples.npz``     ``target_flm (L, 2L-1)``, ``sample_flm (count, L, 2L-1)`` (s2fft layout),
                    ``target_map (12 nside^2,)``, ``sample_maps (count, 12 nside^2)`` (HEALPix
                    RING), ``nside``, ``history``, ``sample_losses``, ``timeline``, ``partial``;
                    an ensemble adds ``target_members_flm (M, L, 2L-1)``, a mask ``mask_map``
                    (HEALPix, ``nside``) and ``mask_grid`` (the statistics' GL grid), a
                    constrained run ``free_flm`` (the free fields; ``sample_maps`` are the
                    target where ``mask_map = 1``, exactly, and the free fields where 0)
``history.csv``     ``step,mean_loss``: the loss before each step, last row after the last step
``report.png``      the validation figure (:mod:`synthesis.report`)
``metrics.json``    the validation numbers, run facts (steps, wall time, mode, stop reason) and
                    ``"partial": true`` when the run was interrupted
==================  ===========================================================================

Ctrl-C during the optimisation stops it after the current chunk; the frames drawn so far are
kept and everything else is written from the last complete chunk, marked partial. A second
Ctrl-C while writing stops the writing (files already renamed into place are whole).
"""

from __future__ import annotations

import dataclasses
import sys
import time
from pathlib import Path

import numpy as np
import s2scat_core

from . import config as cfg
from . import engine, report, targets
from .io import write_json, write_npz, write_text
from .render import FrameRenderer, write_gif

__all__ = ["RunOutcome", "run_experiment", "output_dir"]


@dataclasses.dataclass
class RunOutcome:
    """What :func:`run_experiment` did: the folder, the files, the metrics, partial or not."""

    out_dir: Path
    files: list[Path]
    metrics: dict
    partial: bool
    result: engine.SynthesisResult | None = None


def output_dir(exp: cfg.Experiment, out: str | Path | None = None) -> Path:
    """``out``, else ``output.dir``, else ``runs/<experiment.name>``."""
    if out:
        return Path(out)
    if exp.output.dir:
        return Path(exp.output.dir)
    return Path("runs") / exp.experiment.name


def _stderr(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


def run_experiment(exp: cfg.Experiment, out: str | Path | None = None, *, progress: bool = True,
                   log=_stderr) -> RunOutcome:
    """Run ``exp`` and write its outputs to :func:`output_dir` (see the module doc)."""
    t_start = time.perf_counter()
    out_dir = output_dir(exp, out)
    frames_dir = out_dir / "frames"
    frames_dir.mkdir(parents=True, exist_ok=True)
    for old in frames_dir.glob("frame_*.png"):  # frames of an earlier run in the same folder
        old.unlink()
    files = [write_text(out_dir / "config.toml", cfg.to_toml(exp))]
    st, sy, rd, rp = exp.statistics, exp.synthesis, exp.render, exp.report

    target = targets.load(exp.target, st.L)
    mode = engine.resolve_mode(st.mode, st.L)
    op = s2scat_core.build(st.L, st.N, st.J_min, mode=mode, isotropic=st.isotropic,
                           delta_j=st.delta_j or None, same_scale=st.same_scale)
    if target.mask is not None:  # a mask eroded away at some scale fails here, before the log
        try:
            op.mask(target.mask, st.apodisation)
        except ValueError as err:
            raise ValueError(f"target.mask: {err} (statistics.J_min, statistics.apodisation)"
                             ) from None
    if target.second is not None:
        log(f"[{exp.experiment.name}] second field: {target.second.description}")
    log(f"[{exp.experiment.name}] target: {target.description}; L={st.L} N={st.N} "
        f"J_min={st.J_min} mode={mode}; {sy.count} sample(s), {sy.optimizer}, {sy.steps} steps")

    frames: list[Path] = []
    renderer = None
    if rd.enabled:
        renderer = FrameRenderer(target.flm, steps=sy.steps, panels=min(rd.panels, sy.count),
                                 show_target=rd.show_target, show_loss=rd.show_loss,
                                 width=rd.width, cmap=rd.cmap, nside=rd.nside,
                                 title=exp.experiment.name, mask=target.mask_map,
                                 constrained=sy.constrained, colors=rd.colors)
    last_drawn = [-1]

    def callback(p: engine.Progress):
        if renderer is not None and (p.step % rd.every == 0 or p.step >= sy.steps):
            shown = p.free() if sy.constrained else p.samples()
            frames.append(renderer.draw(p.step, shown[:rd.panels], p.history,
                                        frames_dir / f"frame_{len(frames):05d}.png"))
            last_drawn[0] = p.step
        return False

    weights = dataclasses.asdict(sy.weights)
    pdf_weight, cross_weight = weights.pop("pdf"), weights.pop("cross")
    second = target.second.flm if target.second is not None else None
    result = engine.synthesize(
        target.fields, st.L, st.N, st.J_min, optimizer=sy.optimizer, steps=sy.steps,
        count=sy.count, seed=exp.experiment.seed, learning_rate=sy.learning_rate,
        schedule=sy.schedule, final_lr_fraction=sy.final_lr_fraction, memory=sy.memory,
        linesearch_steps=sy.linesearch_steps, init=sy.init, precondition=sy.precondition,
        weights=weights, tolerance=sy.tolerance, chunk=sy.chunk, mask=target.mask,
        apodisation=st.apodisation, constrained=sy.constrained, pdf_weight=pdf_weight,
        entry_weights=sy.entry_weights, second_flm=second, cross_weight=cross_weight,
        callback=callback, progress=progress, op=op)
    partial = result.partial
    if partial:
        log(f"[{exp.experiment.name}] interrupted at step {result.steps}: writing what there is "
            f"(marked partial)")
    metrics = {"experiment": exp.experiment.name, "partial": partial, "stopped": result.stopped,
               "steps": result.steps, "count": sy.count, "L": st.L, "N": st.N,
               "J_min": st.J_min, "mode": result.mode, "optimizer": sy.optimizer,
               "synthesis_time_s": round(result.wall_time, 3)}
    try:
        if renderer is not None and last_drawn[0] != result.steps and not partial:
            shown = result.free if sy.constrained else result.samples
            frames.append(renderer.draw(result.steps, shown[:rd.panels], result.history,
                                        frames_dir / f"frame_{len(frames):05d}.png"))
        data = report.compute(target.flm, result.samples, op=op if rp.enabled else None,
                              nside=rp.nside, thresholds=rp.thresholds, bins=rp.bins,
                              J_min=st.J_min, members=target.members,
                              mask=target.mask_map, mask_grid=target.mask, free=result.free,
                              apodisation=st.apodisation)
        extra = {}
        if target.members is not None:
            extra["target_members_flm"] = target.members
        if target.mask_map is not None:
            extra.update(mask_map=data["mask_map"], mask_grid=target.mask)
        if result.free is not None:
            extra["free_flm"] = result.free
        files.append(write_npz(
            out_dir / "samples.npz", target_flm=target.flm, sample_flm=result.samples,
            target_map=data["t_map"], sample_maps=data["s_maps"], nside=data["nside"],
            history=result.history, sample_losses=result.sample_losses,
            timeline=result.timeline, partial=partial, **extra))
        files.append(write_text(out_dir / "history.csv", "step,mean_loss\n" + "".join(
            f"{i},{v:.10g}\n" for i, v in enumerate(result.history))))
        if frames:
            gif = write_gif(frames, out_dir / "synthesis.gif", fps=rd.fps, hold=rd.hold,
                            colors=rd.colors)
            files += frames + [gif]
        if rp.enabled:
            metrics.update(report.compute_metrics(data, history=result.history,
                                                  sample_losses=result.sample_losses))
            title = (f"{exp.experiment.name}: {target.description}; L={st.L}, N={st.N}, "
                     f"J_min={st.J_min}; {sy.count} sample(s), {sy.optimizer}, {result.steps} "
                     f"steps{' (PARTIAL)' if partial else ''}")
            files.append(report.write_figure(data, out_dir / "report.png", history=result.history,
                                             title=title, cmap=rd.cmap))
        if result.second is not None:
            files += _write_second(exp, target, result, op if rp.enabled else None, out_dir,
                                   metrics, partial)
    except KeyboardInterrupt:
        partial = metrics["partial"] = True
        log(f"[{exp.experiment.name}] interrupted while writing; metrics.json marks the run partial")
    metrics["wall_time_s"] = round(time.perf_counter() - t_start, 3)
    files.append(write_json(out_dir / "metrics.json", metrics))
    return RunOutcome(out_dir, [Path(f) for f in files], metrics, partial, result)


def _write_second(exp, target, result, op, out_dir, metrics, partial) -> list:
    """A pair's second field: ``samples_second.npz``, ``report_second.png`` and
    ``report_cross.png``; ``metrics["second"]`` and ``metrics["cross"]``."""
    st, rp = exp.statistics, exp.report
    second = target.second
    data = report.compute(second.flm, result.second, op=op, nside=rp.nside,
                          thresholds=rp.thresholds, bins=rp.bins, J_min=st.J_min,
                          mask=second.mask_map, mask_grid=second.mask,
                          apodisation=st.apodisation)
    files = [write_npz(out_dir / "samples_second.npz", target_flm=second.flm,
                       sample_flm=result.second, target_map=data["t_map"],
                       sample_maps=data["s_maps"], nside=data["nside"], partial=partial)]
    if not rp.enabled:
        return files
    metrics["second"] = report.compute_metrics(data)
    tag = " (PARTIAL)" if partial else ""
    files.append(report.write_figure(
        data, out_dir / "report_second.png", history=result.history, cmap=exp.render.cmap,
        title=f"{exp.experiment.name}, second field: {second.description}{tag}"))
    cross = report.compute_cross(target.flm, second.flm, result.samples, result.second, op=op,
                                 nside=rp.nside, J_min=st.J_min, mask=target.mask_map,
                                 mask_grid=target.mask, apodisation=st.apodisation)
    metrics["cross"] = cross["metrics"]
    files.append(report.write_cross_figure(cross, out_dir / "report_cross.png",
                                           title=f"{exp.experiment.name}: the pair's cross "
                                                 f"statistics{tag}"))
    return files
