"""Checkpoints and resume: an exact round trip, bitwise resume (both optimisers; a real SIGKILL
through the command line), the checkpoint rules, divergence, output folders, and the
precompute memory guard."""

import dataclasses
import json
import signal
import subprocess
import sys
import time

import jax.numpy as jnp
import numpy as np
import pytest

import s2scat_core
from s2scat_core import _memory
from s2scat_core.transforms import precompute
from synthesis import checkpoint, engine, loop, optim, steps
from synthesis import run as run_mod
from synthesis.cli import main
from synthesis.targets import demo, standardise

L = 16
KW = dict(L=L, N=3, J_min=2, mode="ducc", count=2, steps=20, chunk=5)


@pytest.fixture(scope="module")
def target():
    return standardise(demo.lognormal(L, seed=1))


class Crash(Exception):
    """Stands for the process dying between two chunks."""


# ------------------------------------------------------------------------------ the format
def test_round_trip_is_exact_in_every_dtype(tmp_path):
    rng = np.random.default_rng(0)
    leaves = [np.int32(7), rng.standard_normal((3, 2)), np.array([np.nan, -0.0, np.inf]),
              np.int64(-3), np.array([True, False]), rng.standard_normal(4) + 1j]
    saved = checkpoint.Saved(
        x=rng.standard_normal((2, 2, 4, 4)), opt_leaves=leaves, step=30, done=False,
        last=0.125, history=rng.standard_normal(31), sample_losses=rng.random((4, 2)),
        timeline=rng.random((4, 2)), initial=1.5, elapsed=12.25, stopped=None,
        arguments={"L": 4, "weights": {"S4": 0.5}}, arrays={"target_flm": np.ones((1, 4, 7),
                                                                                   complex)},
        environment={"backend": "cpu"}, info={"frames": 3})
    back = checkpoint.read(checkpoint.write(tmp_path / "c.npz", saved))
    for a, b in zip(saved.opt_leaves + [saved.x, saved.history],
                    back.opt_leaves + [back.x, back.history]):
        a, b = np.asarray(a), np.asarray(b)
        assert a.dtype == b.dtype and a.shape == b.shape and a.tobytes() == b.tobytes()
    assert (back.step, back.done, back.last, back.initial, back.elapsed, back.stopped) == (
        30, False, 0.125, 1.5, 12.25, None)
    assert back.arguments == saved.arguments and back.info == {"frames": 3}
    assert not back.finished and checkpoint.unfinished(tmp_path / "c.npz")
    assert not list(tmp_path.glob(".*tmp-*"))


def test_unreadable_checkpoints_are_named(tmp_path):
    with pytest.raises(ValueError, match="does not exist"):
        checkpoint.read(tmp_path / "none.npz")
    (tmp_path / "bad.npz").write_bytes(b"PK\x03\x04 truncated")
    with pytest.raises(ValueError, match="bad.npz.*not readable"):
        checkpoint.read(tmp_path / "bad.npz")
    assert not checkpoint.unfinished(tmp_path / "bad.npz")


# ------------------------------------------------------------------------------ the engine
@pytest.mark.parametrize("optimizer, stop", [("lbfgs", Crash), ("adam", KeyboardInterrupt)])
def test_resumed_run_equals_an_uninterrupted_one_bitwise(target, tmp_path, monkeypatch,
                                                         optimizer, stop):
    traces, made = [], []
    real_chunk, real_function = steps._chunk, engine._chunk_function
    engine._chunk_function.cache_clear()

    def counted(*args, **kwargs):
        traces.append(1)
        return real_chunk(*args, **kwargs)

    def recorded(spec, length):
        made.append(real_function(spec, length))
        return made[-1]

    monkeypatch.setattr(steps, "_chunk", counted)
    monkeypatch.setattr(engine, "_chunk_function", recorded)
    full = engine.synthesize(target, optimizer=optimizer, **KW)
    path = tmp_path / "run.npz"

    def dies_at_15(p):
        if p.step == 15:
            raise stop

    if stop is Crash:  # dies between chunks: the checkpoint of step 10 is what is left
        with pytest.raises(Crash):
            engine.synthesize(target, optimizer=optimizer, checkpoint=path, checkpoint_every=10,
                              callback=dies_at_15, **KW)
        assert (checkpoint.read(path).step, checkpoint.read(path).stopped) == (10, None)
    else:  # Ctrl-C: the partial result and a checkpoint of the last chunk
        partial = engine.synthesize(target, optimizer=optimizer, checkpoint=path,
                                    checkpoint_every=10, callback=dies_at_15, **KW)
        assert partial.partial and partial.steps == 15
        assert checkpoint.read(path).stopped == "interrupted"
    resumed = engine.resume(path)
    assert resumed.steps == 20 and resumed.stopped == "steps"
    assert np.array_equal(resumed.samples, full.samples)
    assert np.array_equal(resumed.history, full.history)
    assert np.array_equal(resumed.sample_losses, full.sample_losses)
    assert resumed.timeline[:, 0].tolist() == full.timeline[:, 0].tolist() == [0, 5, 10, 15, 20]
    # one chunk function, traced and compiled once for the three runs (the resumed one too)
    assert len({id(f) for f in made}) == 1 and len(traces) == 1 and made[0]._cache_size() == 1
    again = engine.resume(path)  # finished: returned as it stands
    assert again.stopped == "steps" and np.array_equal(again.samples, full.samples)
    assert len(traces) == 1


def test_checkpoint_rules_by_steps_and_by_time(target, tmp_path, monkeypatch):
    written, now = [], [0.0]
    real_write = checkpoint.write

    def write(path, saved):
        written.append((saved.step, saved.stopped))
        return real_write(path, saved)

    def tick(p):  # each chunk takes 25 s of the fake clock
        now[0] += 25.0 if p.step else 0.0

    monkeypatch.setattr(checkpoint, "write", write)
    monkeypatch.setattr(loop, "clock", lambda: now[0])
    path = tmp_path / "run.npz"
    for every, seconds, expected in [(None, 60.0, [15]), (10, 60.0, [10]),
                                     (None, 0.0, [5, 10, 15]), (None, 1e9, [])]:
        written.clear()
        engine.synthesize(target, optimizer="adam", checkpoint=path, checkpoint_every=every,
                          checkpoint_seconds=seconds, callback=tick, **KW)
        assert written == [(s, None) for s in expected] + [(20, "steps")], (every, seconds)
    # a write that takes 30 s: the next one (by time) waits 20 x 30 s
    monkeypatch.setattr(checkpoint, "write", lambda p, s: (write(p, s), now.__setitem__(
        0, now[0] + 30.0)))
    written.clear()
    engine.synthesize(target, optimizer="adam", checkpoint=path, checkpoint_seconds=0.0,
                      callback=tick, **KW)
    assert written == [(5, None), (20, "steps")]
    with pytest.raises(ValueError, match="checkpoint_every must be >= 1"):
        engine.synthesize(target, checkpoint=path, checkpoint_every=0, **KW)


@pytest.mark.filterwarnings("ignore::RuntimeWarning")  # NumPy on the NaN maps (ducc)
def test_divergence_names_the_step_and_keeps_the_last_finite_state(target, tmp_path):
    with pytest.raises(engine.Diverged, match=r"infinite at step 1 .*learning rate") as info:
        engine.synthesize(target, optimizer="adam", learning_rate=1e100, schedule="constant",
                          checkpoint=tmp_path / "run.npz", **{**KW, "count": 1})
    err = info.value
    assert err.step == 1 and err.checkpoint is None and not (tmp_path / "run.npz").exists()
    assert err.result.stopped == "diverged" and err.result.steps == 0
    assert np.all(np.isfinite(err.result.samples))
    with pytest.raises(engine.Diverged, match="at the start.*target's scale"):
        engine.synthesize(target * 1e200, **KW)


# ------------------------------------------------------------------------------ the command
CLI = ["--set", "statistics.L=16", "--set", "statistics.J_min=2", "--set", "statistics.mode=ducc",
       "--set", "synthesis.optimizer=adam", "--set", "synthesis.count=2", "--set",
       "synthesis.chunk=5", "--set", "checkpoint.every=5", "--set", "render.every=50",
       "--set", "render.width=200", "--set", "report.enabled=false", "--quiet"]


def test_sigkill_then_resume_ends_as_an_uninterrupted_run(tmp_path, capsys, monkeypatch):
    args = [*CLI, "--set", "synthesis.steps=200"]
    ref = tmp_path / "ref"
    (ref / "frames").mkdir(parents=True)
    (ref / "frames" / "frame_00009.png").write_bytes(b"stale")
    (ref / "notes.txt").write_text("mine")
    assert main(["run", "--out", str(ref), *args]) == 2  # a folder with files: refused
    assert "--overwrite" in capsys.readouterr().err
    assert main(["run", "--out", str(ref), *args, "--overwrite"]) == 0
    assert not (ref / "frames" / "frame_00009.png").exists() and (ref / "notes.txt").exists()

    killed = tmp_path / "killed"
    proc = subprocess.Popen([sys.executable, "-m", "synthesis", "run", "--out", str(killed),
                             *args], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    deadline = time.monotonic() + 300
    while not (killed / "checkpoint.npz").is_file() and proc.poll() is None:
        assert time.monotonic() < deadline, "no checkpoint within 300 s"
        time.sleep(0.01)
    proc.send_signal(signal.SIGKILL)
    assert proc.wait(timeout=60) == -signal.SIGKILL, proc.stderr.read().decode()
    proc.stderr.close()
    saved = checkpoint.read(killed / "checkpoint.npz")
    assert saved.stopped is None and 5 <= saved.step < 200
    assert not (killed / "samples.npz").exists() and not (killed / "metrics.json").exists()

    capsys.readouterr()
    assert main(["run", "--out", str(killed), *args]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and f"s2scat-synth resume {killed}" in err[0]
    # what resume refuses: an edited config.toml, a target that no longer reads the same
    config = (killed / "config.toml").read_text()
    (killed / "config.toml").write_text(config.replace("count = 2", "count = 3"))
    assert main(["resume", str(killed)]) == 2
    assert "config.toml changed after the run started" in capsys.readouterr().err
    (killed / "config.toml").write_text(config)
    real_load = run_mod.targets.load
    with monkeypatch.context() as m:
        m.setattr(run_mod.targets, "load", lambda t, L: dataclasses.replace(
            real_load(t, L), flm=standardise(demo.lognormal(L, seed=2))))
        assert main(["resume", str(killed)]) == 2
    assert "target as the experiment now reads it differs" in capsys.readouterr().err
    assert main(["resume", str(killed), "--quiet"]) == 0
    with np.load(ref / "samples.npz") as a, np.load(killed / "samples.npz") as b:
        assert np.array_equal(a["sample_flm"], b["sample_flm"])
        assert np.array_equal(a["history"], b["history"]) and not bool(b["partial"])
    names = sorted(p.name for p in (killed / "frames").iterdir())
    assert names == sorted(p.name for p in (ref / "frames").iterdir()) and len(names) == 5
    metrics = json.loads((killed / "metrics.json").read_text())
    assert metrics["resumed_from_step"] == saved.step and metrics["steps"] == 200
    assert checkpoint.read(killed / "checkpoint.npz").stopped == "steps"
    capsys.readouterr()
    assert main(["resume", str(killed)]) == 0
    assert "nothing to do" in capsys.readouterr().err


@pytest.fixture
def fresh_chunks():
    engine._chunk_function.cache_clear()
    yield
    engine._chunk_function.cache_clear()  # drop the poisoned ones


@pytest.mark.filterwarnings("ignore::RuntimeWarning")
def test_divergence_on_the_command_line_exits_3_and_keeps_the_checkpoint(
        tmp_path, capsys, monkeypatch, fresh_chunks):
    real = optim.make_step

    def poisoned(spec, opt):  # the samples become NaN at Adam's 7th step
        step = real(spec, opt)

        def bad(x, state, loss_fn):
            x, state, value = step(x, state, loss_fn)
            return jnp.where(state[0].count >= 7, jnp.nan, x), state, value
        return bad

    monkeypatch.setattr(optim, "make_step", poisoned)
    out = tmp_path / "run"
    assert main(["run", "--out", str(out), *CLI, "--set", "synthesis.steps=20"]) == 3
    err = capsys.readouterr().err
    mine = [line for line in err.splitlines() if line.startswith("s2scat-synth:")]
    assert len(mine) == 1 and err.strip().splitlines()[-1] == mine[0] and "Traceback" not in err
    assert "diverged: the loss became NaN at step 7" in mine[0] and "learning rate" in mine[0]
    assert "checkpoint.npz) is kept" in mine[0]
    saved = checkpoint.read(out / "checkpoint.npz")
    assert saved.step == 5 and np.all(np.isfinite(saved.x))
    assert not (out / "samples.npz").exists() and not (out / "metrics.json").exists()


def test_overwrite_removes_only_what_a_run_writes(tmp_path):
    out = tmp_path / "run"
    (out / "frames").mkdir(parents=True)
    for name in ("samples.npz", "checkpoint.npz", "frames/frame_00000.png", "mine.txt"):
        (out / name).write_text("x")
    with pytest.raises(ValueError, match="already holds files: add --overwrite"):
        run_mod.check_output_dir(out)
    run_mod.check_output_dir(out, overwrite=True)  # allowed; cleared once the input is checked
    assert len(list(out.rglob("*.*"))) == 4
    run_mod.clear_outputs(out)
    assert sorted(p.name for p in out.rglob("*") if p.is_file()) == ["mine.txt"]
    run_mod.check_output_dir(tmp_path / "new" / "deeper")  # not there yet: fine
    with pytest.raises(ValueError, match="lies inside .*mine.txt.*a file"):
        run_mod.check_output_dir(out / "mine.txt" / "sub")


# ------------------------------------------------------------------------------ memory
def test_precompute_refuses_kernels_larger_than_free_memory(monkeypatch):
    op = s2scat_core.build(L, 3, 1, mode="precompute")
    b = op.backend
    kept = sum(a.nbytes for t in b.tables.values() for a in t.values())
    assert precompute.kernel_bytes(b.bandlimits, b.spins, b.dtype) == kept
    monkeypatch.setattr(_memory, "available", lambda: {"host": 10 ** 12, "device": kept - 1})
    with pytest.raises(ValueError, match=r"tabulate 0\.1 MB .* L=16.*device.*'recursive' or "
                                         r"'ducc'"):
        s2scat_core.build(L, 3, 1, mode="precompute")
    monkeypatch.setattr(_memory, "available", lambda: {"host": kept, "device": None})
    with pytest.raises(ValueError, match="host memory"):  # on the CPU: kernels and the build
        s2scat_core.build(L, 3, 1, mode="precompute")
    s2scat_core.build(L, 3, 1, mode="ducc")  # the others are not guarded
    monkeypatch.undo()
    monkeypatch.setenv("S2SCAT_AVAILABLE_GB", "1e-6")
    assert _memory.available() == {"host": 1000, "device": 1000}
    with pytest.raises(ValueError, match="more than the 0.0 MB free"):
        s2scat_core.build(L, 3, 1, mode="precompute")
