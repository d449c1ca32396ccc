"""Devices: the batch sharded over a mesh. The sharded cases run on 5 forced host devices in a
pytest subprocess (tests/forced_devices_cases.py: XLA_FLAGS must be set before JAX starts);
two processes run one program with jax.distributed over localhost; here, on this process's
one device: the config key, the errors, the processes' share of mocks, mocks resumed and
refused, and encode reading its inputs chunk by chunk."""

import gc
import json
import os
import subprocess
import sys
import weakref
from pathlib import Path

import jax
import numpy as np
import pytest

from synthesis import config as cfg
from synthesis import checkpoint, devices, engine, mocks
from synthesis import run as run_mod
from synthesis import encode as encode_mod
from synthesis.cli import main

HERE = Path(__file__).resolve().parent
TINY = ["statistics.L=16", "statistics.J_min=2", "statistics.mode=ducc",
        "statistics.isotropic=true", "synthesis.count=2", "synthesis.steps=4", "synthesis.chunk=2",
        "render.every=2"]


def test_sharded_runs_on_forced_host_devices():
    env = {**os.environ, "XLA_FLAGS": "--xla_force_host_platform_device_count=5",
           "MPLBACKEND": "Agg"}
    proc = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider",
                           str(HERE / "forced_devices_cases.py")], env=env, cwd=HERE.parent,
                          capture_output=True, text=True, timeout=900)
    assert proc.returncode == 0, proc.stdout[-6000:] + proc.stderr[-3000:]
    assert " passed" in proc.stdout and "skipped" not in proc.stdout, proc.stdout[-2000:]


def test_two_processes_run_one_program_and_process_0_writes(tmp_path):
    """``run --distributed`` with two processes on this host (jax.distributed over localhost,
    one CPU device each, Gloo collectives): the mesh spans both, count 3 is padded to 4, the
    frames and checkpoints gather the samples from both, process 0 writes the folder."""
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    out = tmp_path / "run"
    sets = sum((["--set", s] for s in TINY + ["synthesis.count=3", "synthesis.steps=4",
                                              "report.enabled=false", "checkpoint.every=2"]), [])
    env = {k: v for k, v in os.environ.items() if k != "XLA_FLAGS"}
    procs = [subprocess.Popen(
        [sys.executable, "-m", "synthesis", "run", "--out", str(out), "--distributed", "--quiet",
         *sets], cwd=HERE.parent, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
        env={**env, "JAX_COORDINATOR_ADDRESS": f"127.0.0.1:{port}", "JAX_NUM_PROCESSES": "2",
             "JAX_PROCESS_ID": str(i), "MPLBACKEND": "Agg"}) for i in (0, 1)]
    said = [p.communicate(timeout=600)[0] for p in procs]
    assert [p.returncode for p in procs] == [0, 0], said
    assert "wrote" in said[0] and "wrote" not in said[1]  # process 0 reports
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["devices"] == {"count": 2, "platform": "cpu", "processes": 2}
    saved = checkpoint.read(out / "checkpoint.npz")
    assert saved.x.shape[0] == 3 and saved.environment["devices"] == 2 and saved.step == 4
    assert len(list((out / "frames").glob("frame_*.png"))) == 3  # steps 0, 2, 4


# ------------------------------------------------------------------------------ the key
def test_devices_key_in_schema_and_checked():
    rows = {key: (tp, default, unit) for key, tp, default, unit, _ in cfg.schema_rows()}
    assert rows["synthesis.devices"] == ("int or str", "all", "devices")
    assert cfg.apply_overrides(cfg.Experiment(), ["synthesis.devices=2"]).synthesis.devices == 2
    for bad in ("0", "true", "some", "1.5"):
        with pytest.raises(cfg.ConfigError, match='synthesis.devices must be "all" or an integer'):
            cfg.apply_overrides(cfg.Experiment(), [f"synthesis.devices={bad}"])


def test_more_devices_than_jax_sees_is_one_line_naming_the_key(tmp_path, capsys):
    n = jax.device_count() + 1
    args = ["--set", f"synthesis.devices={n}", *sum((["--set", s] for s in TINY), [])]
    assert main(["run", "--out", str(tmp_path / "r"), *args, "--quiet"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and f"synthesis.devices = {n}, but JAX sees {n - 1}" in err[0]
    assert not (tmp_path / "r").exists()  # refused before writing
    assert main(["encode", "x.npy", "--out", str(tmp_path / "s.npz"), "--devices", "x"]) == 2
    assert "--devices" in capsys.readouterr().err
    with pytest.raises(ValueError, match="devices must be"):
        devices.resolve(0)


def test_one_device_is_the_unsharded_path():
    d = devices.resolve("all")
    assert d.count == jax.device_count() == 1 and d.mesh is None
    batch = devices.Batch.of(d, 3)
    assert (batch.size, batch.padded, batch.padding(np.ones((3, 2)))) == (3, False, None)


def test_batch_padding_on_a_mesh_of_three():
    """Padding arithmetic, without devices: 5 samples on 3 devices are 6 rows."""
    d = devices.Devices(None, 3, "cpu")
    b = devices.Batch.of(d, 5)
    assert b.size == 6 and b.padded
    x = np.arange(5.0)[:, None] * np.ones((5, 2))
    assert np.array_equal(b.pad(x, copies=True)[5], x[0]) and np.all(b.pad(x)[5] == 0)
    state = (np.ones((4, 5, 2)), np.ones(4))  # an L-BFGS memory leaf (batch axis 1), a scalar
    padded = b.pad_tree(state, (5, 2))
    assert padded[0].shape == (4, 6, 2) and np.all(padded[0][:, 5] == 0)
    assert padded[1].shape == (4,)
    back = b.unpad_tree(padded, (6, 2))
    assert np.array_equal(back[0], state[0]) and np.array_equal(back[1], state[1])


# ------------------------------------------------------------------------------ processes
def test_processes_share_the_batches_without_overlap():
    batches = range(3, 14)
    shares = [devices.assigned(batches, p, 4) for p in range(4)]
    assert sorted(sum(shares, [])) == list(batches)
    assert all(k % 4 == p for p, share in enumerate(shares) for k in share)
    assert devices.assigned(batches, 0, 1) == list(batches)
    with pytest.raises(ValueError, match="process_index"):
        devices.assigned(batches, 4, 4)
    names = {mocks.batch_file("d", k) for k in batches}
    assert len(names) == len(batches)  # one file per batch: processes never clobber


def test_mocks_equal_runs_skip_written_batches_and_refuse_another_experiment(
        tmp_path, monkeypatch, capsys):
    exp = cfg.apply_overrides(cfg.Experiment(), TINY)
    out = tmp_path / "mocks"
    monkeypatch.setattr(devices, "process", lambda: (1, 2))  # process 1 of 2
    got = mocks.run_mocks(exp, out, 4, progress=False, log=lambda m: None, distributed=True)
    assert [p.name for p in got.written] == ["mocks_00001.npz", "mocks_00003.npz"]
    monkeypatch.undo()
    assert main(["mocks", "--out", str(out), "--batches", "3", *sum(
        (["--set", s] for s in TINY), []), "--quiet"]) == 0
    said = capsys.readouterr()
    assert "2 batch(es) written, 1 already there" in said.out  # 0 and 2 new, 1 skipped
    assert sorted(p.name for p in out.glob("mocks_*.npz")) == [
        f"mocks_0000{k}.npz" for k in range(4)]
    session = run_mod._Session(exp, tmp_path, lambda m: None)
    run = engine.synthesize(session.target.fields, 16, 3, 2, op=session.op,
                            **{**session.options(), "seed": exp.experiment.seed + 3})
    with np.load(out / "mocks_00003.npz") as z:
        assert int(z["seed"]) == 3 and z["sample_maps"].shape == (2, 12 * 16 ** 2)
        assert np.array_equal(z["sample_flm"], run.samples)  # batch k is the run of seed k
        assert np.array_equal(z["final_loss"], run.final_loss)
    other = ["--set", "synthesis.steps=5", *sum((["--set", s] for s in TINY[:5]), [])]
    assert main(["mocks", "--out", str(out), "--batches", "1", *other, "--quiet"]) == 2
    assert "holds the mocks of another experiment" in capsys.readouterr().err
    assert main(["mocks", "--out", str(out), "--batches", "0"]) == 2
    assert "--batches must be an integer >= 1" in capsys.readouterr().err


# ------------------------------------------------------------------------------ encode
def test_encode_reads_one_chunk_at_a_time(tmp_path, monkeypatch, capsys):
    from synthesis import targets

    paths = []
    for seed in range(5):
        m = targets.demo_map(cfg.apply_overrides(cfg.Experiment(), [f"target.seed={seed}"])
                             .target, 16)
        paths.append(str(targets.write_map(m, tmp_path / f"m{seed}.npy")))
    (tmp_path / "list.txt").write_text("\n".join(paths) + "\n")
    real, chunks, live = encode_mod._read_chunk, [], []

    def reader(p, *args):
        gc.collect()
        chunks.append((len(p), sum(ref() is not None for ref in live)))
        flms = real(p, *args)
        live.append(weakref.ref(flms))
        return flms

    monkeypatch.setattr(encode_mod, "_read_chunk", reader)
    out = tmp_path / "s.npz"
    assert main(["encode", f"@{tmp_path / 'list.txt'}", "--out", str(out), "--L", "16",
                 "--J-min", "1", "--isotropic", "--batch", "2"]) == 0
    assert chunks == [(2, 0), (2, 0), (1, 0)]  # chunk by chunk, the last one freed each time
    assert "5 input(s)" in capsys.readouterr().out
    whole = encode_mod.encode(paths, L=16, J_min=1, isotropic=True, batch=64)
    with np.load(out) as z:
        assert list(z["files"]) == paths and int(z["devices"]) == 1
        assert np.allclose(z["covariances"], whole["covariances"], rtol=1e-12, atol=0)
