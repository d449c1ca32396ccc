"""Cases on forced host devices, run by ``tests/test_devices.py`` in a pytest subprocess with
``XLA_FLAGS=--xla_force_host_platform_device_count=5`` (the flag must be set before JAX starts;
the file name keeps it out of the ordinary collection): the ``ducc`` backend shards over 4 of
them (the first stages its host callbacks' arguments, :func:`synthesis.devices.resolve`),
``precompute`` over any.

Sharded runs equal unsharded ones to 1e-10 (both optimisers, count 3 on 4 devices: padded, and
4), one compilation of the sharded chunk, coarse-to-fine stages, resume on another device
count, encode sharded and streamed, mocks sharded and skipping finished batches.
"""

import jax
import numpy as np
import pytest

from synthesis import checkpoint, devices, engine, mocks
from synthesis import config as cfg
from synthesis import encode as encode_mod
from synthesis.targets import demo, standardise

L = 16
KW = dict(L=L, N=3, J_min=2, mode="ducc", isotropic=True, steps=10, chunk=5)

if jax.device_count() != 5:  # pragma: no cover - run through tests/test_devices.py
    pytest.skip("needs XLA_FLAGS=--xla_force_host_platform_device_count=5",
                allow_module_level=True)


@pytest.fixture(scope="module")
def target():
    return standardise(demo.lognormal(L, seed=1))


@pytest.fixture(scope="module")
def single(target):
    """One-device runs, computed once: ``(optimizer, count) -> result``."""
    return {(o, c): engine.synthesize(target, optimizer=o, count=c, devices=1,
                                      learning_rate=0.1, **KW)
            for o in ("lbfgs", "adam") for c in (3, 4)}


def rel(a, b) -> float:
    return float(np.abs(a - b).max() / np.abs(b).max())


@pytest.fixture
def made(monkeypatch):
    """The jitted chunks the runs of a test make (the cache cleared first)."""
    real, out = engine._chunk_function, []
    real.cache_clear()

    def record(*args):
        out.append(real(*args))
        return out[-1]

    monkeypatch.setattr(engine, "_chunk_function", record)
    return out


@pytest.mark.parametrize("optimizer", ["lbfgs", "adam"])
@pytest.mark.parametrize("count", [3, 4])
def test_sharded_equals_one_device(target, single, made, optimizer, count):
    r = engine.synthesize(target, optimizer=optimizer, count=count, devices="all",
                          learning_rate=0.1, **KW)
    one = single[optimizer, count]
    assert r.devices == 4 and one.devices == 1
    assert r.samples.shape == one.samples.shape == (count, L, 2 * L - 1)
    assert r.sample_losses.shape == one.sample_losses.shape == (3, count)
    assert rel(r.samples, one.samples) < 1e-10
    assert rel(r.history, one.history) < 1e-10 and rel(r.final_loss, one.final_loss) < 1e-10
    assert r.final_loss.mean() < 0.5 * r.initial_loss.mean()  # it optimised
    assert len(made) == 1 and made[0]._cache_size() == 1  # compiled once, outputs fed back


def test_sharded_precompute_backend(target):
    """The JAX-only backend (no host callbacks) shards the same way."""
    kw = {**KW, "mode": "precompute", "optimizer": "adam", "count": 3, "learning_rate": 0.1}
    one, four = (engine.synthesize(target, devices=d, **kw) for d in (1, 4))
    assert four.devices == 4 and rel(four.samples, one.samples) < 1e-10


def test_sharded_coarse_to_fine_equals_one_device(target):
    """Each stage of a coarse-to-fine run is sharded like a run of its own (count 3: padded)."""
    kw = {**KW, "optimizer": "lbfgs", "count": 3, "stages": 2}
    one, four = (engine.synthesize(target, devices=d, **kw) for d in (1, "all"))
    assert four.devices == 4 and one.devices == 1
    assert rel(four.samples, one.samples) < 1e-10 and rel(four.history, one.history) < 1e-10


def test_ducc_leaves_the_staging_device_out():
    staging = jax.devices("cpu")[0]
    ducc, plain = devices.resolve("all", callbacks=True), devices.resolve("all")
    assert ducc.count == 4 and staging not in ducc.mesh.devices.flat
    assert plain.count == 5 and staging in plain.mesh.devices.flat
    with pytest.raises(ValueError, match="besides the one that stages"):
        devices.resolve(5, callbacks=True)


def test_padded_samples_do_not_move_and_are_not_reported(target):
    problem = engine._prepare(target, L, engine.functools.partial(
        engine.s2scat_core.build, L, 3, 2, mode="ducc", isotropic=True),
        optimizer="lbfgs", steps=10, count=3, seed=0, learning_rate=0.05, schedule="cosine",
        final_lr_fraction=0.01, memory=10, linesearch_steps=20, init="power", precondition=True,
        weights=None, tolerance=0.0, chunk=5, mask=None, apodisation=None, constrained=False,
        pdf_weight=0.0, entry_weights="auto", second_flm=None, cross_weight=1.0)
    assert problem.carry.x.shape[0] == 4 and problem.batch.count == 3
    assert problem.carry.x.sharding.spec == jax.sharding.PartitionSpec("batch")
    out = problem.run_chunk(problem.op, problem.carry, problem.consts._replace(
        reference=problem.scalar(1.0)), np.int64(10))
    x = np.asarray(out[0].x)
    assert np.all(x[3] == 0) and np.any(x[:3] != np.asarray(problem.carry.x)[:3])
    leaves = [np.asarray(a) for a in jax.tree_util.tree_leaves(out[0].state) if np.ndim(a) >= 4]
    assert all(np.all(np.take(a, [3], axis=a.ndim - 4) == 0) for a in leaves)
    again = problem.reseeded(7, x0=x[:3])  # a start given (e.g. a coarser stage's), re-padded
    assert np.array_equal(np.asarray(again.carry.x), x) and again.arguments["seed"] == 7
    assert again.carry.x.sharding == problem.carry.x.sharding


def test_resume_on_another_device_count(target, single, tmp_path):
    path = tmp_path / "c.npz"
    stopped = engine.synthesize(target, optimizer="lbfgs", count=3, devices=4, learning_rate=0.1,
                                checkpoint=path, callback=lambda p: p.step >= 5, **KW)
    assert stopped.stopped == "callback" and stopped.steps == 5
    saved = checkpoint.read(path)
    assert saved.environment["devices"] == 4 and saved.x.shape[0] == 3  # real samples only
    for n in (1, 2):  # 2 devices: padded to 4 again
        r = engine.resume(path, devices=n) if n == 1 else engine.resume(
            checkpoint.write(tmp_path / "d.npz", saved), devices=n)
        assert r.devices == n and r.steps == 10
        assert rel(r.samples, single["lbfgs", 3].samples) < 1e-10


def test_encode_sharded_streams_and_equals_one_device(tmp_path, monkeypatch):
    from synthesis import targets

    paths = []
    for seed in range(5):
        m = targets.demo_map(cfg.apply_overrides(cfg.Experiment(), [f"target.seed={seed}"])
                             .target, L)
        paths.append(str(targets.write_map(m, tmp_path / f"m{seed}.npy")))
    kw = dict(L=L, N=3, J_min=1, isotropic=True, mode="ducc")
    one = encode_mod.encode(paths, batch=5, devices=1, **kw)
    chunks = []
    real = encode_mod._read_chunk
    monkeypatch.setattr(encode_mod, "_read_chunk",
                        lambda p, *a: chunks.append(len(p)) or real(p, *a))
    four = encode_mod.encode(paths, batch=2, devices="all", **kw)  # 2 -> 4 a chunk: 4 + 1
    assert chunks == [4, 1] and four["devices"] == 4
    assert rel(four["covariances"], one["covariances"]) < 1e-12


def test_mocks_sharded_compile_once_and_skip(tmp_path, made):
    exp = cfg.apply_overrides(cfg.Experiment(), [
        "statistics.L=16", "statistics.J_min=2", "statistics.mode=ducc",
        "statistics.isotropic=true", "synthesis.count=3", "synthesis.steps=6",
        "synthesis.chunk=3", "render.every=3"])
    out = mocks.run_mocks(exp, tmp_path, 3, progress=False, log=lambda m: None)
    assert [p.name for p in out.written] == [f"mocks_0000{k}.npz" for k in range(3)]
    assert len(made) == 1 and made[0]._cache_size() == 1  # three batches, one compilation
    with np.load(out.written[1]) as z:
        assert int(z["seed"]) == 1 and int(z["devices"]) == 4
        assert z["sample_flm"].shape == (3, L, 2 * L - 1)
    again = mocks.run_mocks(exp, tmp_path, 4, progress=False, log=lambda m: None)
    assert again.skipped == [0, 1, 2] and [p.name for p in again.written] == ["mocks_00003.npz"]
