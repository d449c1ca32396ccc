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
``checkpoint.npz``  the run's state (:mod:`synthesis.checkpoint`), written between chunks
                    (``[checkpoint]``: every ``every`` steps, or ``seconds`` apart) and at the end
==================  ===========================================================================

Several hosts (``distributed``, :func:`synthesis.devices.initialize` first): one program over
every process's devices; every process runs the same loop (frames and checkpoints gather the
samples from all of them), process 0 alone writes the files above.

A run into a folder that already holds files is refused unless ``overwrite`` (which removes
the files above first). Ctrl-C during the optimisation stops it after the current chunk; the
frames drawn so far are kept and everything else is written from the last complete chunk,
marked partial. A second Ctrl-C while writing stops the writing (files already renamed into
place are whole). :func:`resume_experiment` continues an interrupted or killed run from its
checkpoint (frames continue their numbering) and writes the outputs as a run would. A loss that
turns non-finite raises :class:`synthesis.Diverged`: no samples are written, the last
checkpoint stays.
"""

from __future__ import annotations

import dataclasses
import json
import sys
import time
import tomllib
from pathlib import Path

import jax
import numpy as np
import s2scat_core

from . import checkpoint
from . import config as cfg
from . import devices as devices_mod
from . import engine, report, stages, targets
from .io import write_json, write_npz, write_text
from .render import FrameRenderer, write_gif

__all__ = ["CHECKPOINT", "RunOutcome", "check_output_dir", "clear_outputs", "output_dir",
           "resume_experiment", "run_experiment"]

#: The checkpoint's name in the output folder.
CHECKPOINT = "checkpoint.npz"
#: What a run writes besides the frames (``--overwrite`` removes these).
OUTPUTS = ("config.toml", CHECKPOINT, "samples.npz", "samples_second.npz", "history.csv",
           "synthesis.gif", "report.png", "report_second.png", "report_cross.png",
           "metrics.json")


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


def check_output_dir(out_dir: Path, overwrite: bool = False) -> None:
    """Refuse an output folder that is a file, lies inside one, or already holds files (a run),
    unless ``overwrite`` (:func:`clear_outputs` then clears it, once the run's input is
    checked)."""
    for path in (out_dir, *out_dir.parents):
        if path.exists() and not path.is_dir():
            where = "is" if path == out_dir else f"lies inside {str(path)!r}, which is"
            raise ValueError(f"output folder {str(out_dir)!r} {where} a file, not a folder")
    if not out_dir.is_dir() or not any(p.is_file() for p in out_dir.rglob("*")):
        return
    if not overwrite:
        hint = (f", continue it with `s2scat-synth resume {out_dir}`"
                if checkpoint.unfinished(out_dir / CHECKPOINT) else "")
        raise ValueError(f"output folder {str(out_dir)!r} already holds files: add --overwrite "
                         f"to replace the run there{hint}, or choose another --out")


def clear_outputs(out_dir: Path) -> None:
    """Remove what a run writes in ``out_dir`` (``--overwrite``); other files stay."""
    for name in OUTPUTS:
        (out_dir / name).unlink(missing_ok=True)
    for old in (out_dir / "frames").glob("frame_*.png"):
        old.unlink()


class _Session:
    """What a run and a resumed run share: target, operator, frame renderer and callback."""

    def __init__(self, exp: cfg.Experiment, out_dir: Path, log, frames=(), last_drawn=-1):
        st, sy, rd = exp.statistics, exp.synthesis, exp.render
        self.exp, self.out_dir, self.log = exp, out_dir, log
        self.frames_dir = out_dir / "frames"
        self.lead = devices_mod.writer()  # process 0 (of several hosts) writes the files
        self.mode = engine.resolve_mode(st.mode, st.L)
        self.callbacks = self.mode in devices_mod.CALLBACK_MODES
        devices_mod.resolve(sy.devices, name="synthesis.devices",  # too many: refused here
                            callbacks=self.callbacks)
        self.target = target = targets.load(exp.target, st.L)
        self.op = s2scat_core.build(st.L, st.N, st.J_min, mode=self.mode,
                                    isotropic=st.isotropic, delta_j=st.delta_j or None,
                                    same_scale=st.same_scale)
        if target.mask is not None:  # a mask eroded away at some scale fails here, before the log
            try:
                self.op.mask(target.mask, st.apodisation)
            except ValueError as err:
                raise ValueError(f"target.mask: {err} (statistics.J_min, statistics.apodisation)"
                                 ) from None
        if sy.stages > 1:
            try:
                stages.bandlimits(st.L, sy.stages, st.J_min)
            except ValueError as err:
                raise ValueError(f"synthesis.stages: {err}") from None
        self.renderer = None
        if rd.enabled:
            self.renderer = FrameRenderer(
                target.flm, steps=sy.steps, panels=min(rd.panels, sy.count),
                show_target=rd.show_target, show_loss=rd.show_loss, width=rd.width,
                cmap=rd.cmap, nside=rd.nside, title=exp.experiment.name, mask=target.mask_map,
                constrained=sy.constrained, colors=rd.colors)
        self.frames: list[Path] = list(frames)
        self.last_drawn = last_drawn

    def callback(self, p: engine.Progress):
        rd, sy = self.exp.render, self.exp.synthesis
        if self.renderer is not None and (p.step % rd.every == 0 or p.step >= sy.steps):
            shown = p.free() if sy.constrained else p.samples()  # (every process: it gathers)
            if not self.lead:
                self.frames.append(None)
                self.last_drawn = p.step
                return False
            self.frames.append(self.renderer.draw(
                p.step, shown[:rd.panels], p.history,
                self.frames_dir / f"frame_{len(self.frames):05d}.png"))
            self.last_drawn = p.step
        return False

    def info(self) -> dict:
        """Stored with each checkpoint: the experiment and the frames drawn so far."""
        return {"config": cfg.to_toml(self.exp), "frames": len(self.frames),
                "last_drawn": self.last_drawn}

    def options(self) -> dict:
        """The keyword arguments of :func:`synthesis.engine.synthesize` (and ``_prepare``)
        that the experiment sets, the target fields and the operator included."""
        exp, target = self.exp, self.target
        st, sy = exp.statistics, exp.synthesis
        weights = dataclasses.asdict(sy.weights)
        pdf_weight, cross_weight = weights.pop("pdf"), weights.pop("cross")
        return dict(
            optimizer=sy.optimizer, steps=sy.steps, count=sy.count, seed=exp.experiment.seed,
            learning_rate=sy.learning_rate, schedule=sy.schedule,
            final_lr_fraction=sy.final_lr_fraction, memory=sy.memory,
            linesearch_steps=sy.linesearch_steps, init=sy.init, precondition=sy.precondition,
            weights=weights, tolerance=sy.tolerance, chunk=sy.chunk, mask=target.mask,
            apodisation=st.apodisation, constrained=sy.constrained, pdf_weight=pdf_weight,
            entry_weights=sy.entry_weights, cross_weight=cross_weight, devices=sy.devices,
            second_flm=None if target.second is None else target.second.flm)


def run_experiment(exp: cfg.Experiment, out: str | Path | None = None, *, progress: bool = True,
                   log=_stderr, overwrite: bool = False) -> RunOutcome:
    """Run ``exp`` and write its outputs to :func:`output_dir` (see the module doc); a folder
    that already holds files is refused unless ``overwrite``. Raises
    :class:`synthesis.Diverged` if the loss turns non-finite (nothing more is written)."""
    t_start = time.perf_counter()
    out_dir = output_dir(exp, out)
    lead = devices_mod.writer()
    if lead:
        check_output_dir(out_dir, overwrite)
    else:  # the other processes of a multi-host run write nothing, say nothing
        progress, log = False, _silent
    session = _Session(exp, out_dir, log)  # bad input fails here, before anything is written
    files = []
    if lead:
        if overwrite:
            clear_outputs(out_dir)
        session.frames_dir.mkdir(parents=True, exist_ok=True)
        files.append(write_text(out_dir / "config.toml", cfg.to_toml(exp)))
    st, sy = exp.statistics, exp.synthesis
    if session.target.second is not None:
        log(f"[{exp.experiment.name}] second field: {session.target.second.description}")
    log(f"[{exp.experiment.name}] target: {session.target.description}; L={st.L} N={st.N} "
        f"J_min={st.J_min} mode={session.mode}; {sy.count} sample(s), {sy.optimizer}, "
        f"{sy.steps} steps" + _stages_note(st, sy))
    result = engine.synthesize(
        session.target.fields, st.L, st.N, st.J_min, callback=session.callback,
        progress=progress, op=session.op, checkpoint=out_dir / CHECKPOINT,
        checkpoint_every=exp.checkpoint.every or None, checkpoint_seconds=exp.checkpoint.seconds,
        checkpoint_info=session.info, stages=sy.stages, **session.options())
    if not lead:
        return RunOutcome(out_dir, [], {}, result.partial, result)
    return _write_outputs(session, result, files, t_start)


def _stages_note(st, sy) -> str:
    """`` in 3 stages (L = 32, 64, 128; 75 + 75 + 150 steps)`` for a staged run, else ``""``."""
    if sy.stages == 1:
        return ""
    Ls = stages.bandlimits(st.L, sy.stages, st.J_min)
    split = stages.split_steps(sy.steps, sy.stages)
    return (f" in {sy.stages} stages (L = {', '.join(map(str, Ls))}; "
            f"{' + '.join(map(str, split))} steps)")


def _silent(_msg: str) -> None:
    pass


def resume_experiment(out_dir: str | Path, *, progress: bool = True, log=_stderr,
                      devices=None) -> RunOutcome:
    """Continue the run in ``out_dir`` from its checkpoint (written by :func:`run_experiment`)
    and write its outputs; frames continue their numbering. The experiment is the one stored
    in the checkpoint (``config.toml`` must not have changed), the target is rebuilt from it
    and must equal the checkpoint's. A finished run whose outputs are whole is left as it is
    (``RunOutcome.result`` is then ``None``). ``devices``: ``"all"`` or ``N`` (default: the
    run's ``synthesis.devices``); another device count continues equal to rounding."""
    t_start = time.perf_counter()
    out_dir = Path(out_dir)
    path = out_dir / CHECKPOINT
    if not out_dir.is_dir():
        raise ValueError(f"resume: {str(out_dir)!r} is not a folder")
    if not path.is_file():
        raise ValueError(f"resume: {str(out_dir)!r} holds no checkpoint ({CHECKPOINT}); start a "
                         f"run there with `s2scat-synth run --out {out_dir}`")
    saved = checkpoint.read(path)
    text = saved.info.get("config")
    if not isinstance(text, str):
        raise ValueError(f"resume: {path} was not written by s2scat-synth run (no experiment)")
    config_file = out_dir / "config.toml"
    if config_file.is_file() and config_file.read_text(encoding="utf-8") != text:
        raise ValueError(f"resume: {config_file} changed after the run started; resume continues "
                         f"the checkpoint's experiment: restore the file, or start anew with "
                         f"`s2scat-synth run --overwrite`")
    exp = cfg.from_dict(tomllib.loads(text))  # relative paths: from here, as the run read them
    name, steps = exp.experiment.name, exp.synthesis.steps
    metrics = _whole_outputs(out_dir)
    if saved.finished and metrics is not None:
        log(f"[{name}] nothing to do: the run finished at step {saved.step} (stopped: "
            f"{saved.stopped}) and its outputs are in place")
        return RunOutcome(out_dir, [], metrics, False, None)
    kept = int(saved.info.get("frames", 0))
    frames = sorted((out_dir / "frames").glob("frame_*.png"))
    session = _Session(exp, out_dir, log, frames[:kept], int(saved.info.get("last_drawn", -1)))
    fields = {"target": (session.target, "target_flm"),
              "target.second": (session.target.second, "second_flm")}
    for key, (field, stored) in fields.items():
        if field is not None and not np.array_equal(
                field.fields if key == "target" else field.flm, saved.arrays.get(stored)):
            raise ValueError(f"resume: {key} as the experiment now reads it differs from the "
                             f"checkpoint's (did its file change?); restore it, or start anew "
                             f"with `s2scat-synth run --overwrite`")
    for later in frames[kept:]:  # drawn after the checkpoint: drawn again
        later.unlink()
    session.frames_dir.mkdir(parents=True, exist_ok=True)
    if not config_file.is_file():
        write_text(config_file, text)
    env = saved.environment
    spec = saved.arguments.get("devices", "all") if devices is None else devices
    now = devices_mod.resolve(spec, name="resume --devices" if devices else "synthesis.devices",
                              callbacks=session.callbacks)
    if (env.get("backend"), env.get("devices")) != (jax.default_backend(), now.count):
        log(f"[{name}] note: the checkpoint was written on {env.get('backend')} with "
            f"{env.get('devices')} device(s); continuing on {jax.default_backend()} with "
            f"{now.count}: equal to rounding, not bit-identical to an uninterrupted run")
    log(f"[{name}] resuming at step {saved.step} of {steps} from {path}")
    result = engine.resume(path, op=session.op, callback=session.callback, progress=progress,
                           checkpoint_info=session.info, devices=spec)
    return _write_outputs(session, result, [config_file], t_start, resumed=saved.step)


def _whole_outputs(out_dir: Path) -> dict | None:
    """The metrics of a run whose outputs were all written (not partial), else ``None``."""
    try:
        metrics = json.loads((out_dir / "metrics.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    whole = isinstance(metrics, dict) and metrics.get("partial") is False
    return metrics if whole and (out_dir / "samples.npz").is_file() else None


def _write_outputs(session: _Session, result, files, t_start, resumed=None) -> RunOutcome:
    """Frames' last one, ``samples.npz``, ``history.csv``, the GIF, the report, metrics."""
    exp, target, op, out_dir = session.exp, session.target, session.op, session.out_dir
    st, sy, rd, rp = exp.statistics, exp.synthesis, exp.render, exp.report
    frames, frames_dir, renderer = session.frames, session.frames_dir, session.renderer
    partial = result.partial
    if partial:
        session.log(f"[{exp.experiment.name}] interrupted at step {result.steps}: writing what "
                    f"there is (marked partial); `s2scat-synth resume {out_dir}` continues it")
    metrics = {"experiment": exp.experiment.name, "partial": partial, "stopped": result.stopped,
               "steps": result.steps, "count": sy.count, "L": st.L, "N": st.N,
               "J_min": st.J_min, "mode": result.mode, "optimizer": sy.optimizer,
               "synthesis_time_s": round(result.wall_time, 3),
               "devices": {"count": result.devices, "platform": jax.devices()[0].platform,
                           "processes": jax.process_count()}}
    if resumed is not None:
        metrics["resumed_from_step"] = resumed
    try:
        if renderer is not None and session.last_drawn != result.steps and not partial:
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
        session.log(f"[{exp.experiment.name}] interrupted while writing; metrics.json marks "
                    f"the run partial")
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
