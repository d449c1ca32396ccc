"""Coarse-to-fine synthesis: the stages' band-limits and budgets, each stage starting from the
previous one's fields, one record over all stages, real skies and pairs in stages, bitwise
resume in any stage, bad input."""

import numpy as np
import pytest

import s2scat_core
from s2scat_core import harmonics
from synthesis import checkpoint, engine, params, stages
from synthesis.cli import main
from synthesis.targets import demo, masks, standardise

L = 16
KW = dict(L=L, N=3, J_min=1, mode="ducc", count=2, steps=12, chunk=3, pdf_weight=1.0)


@pytest.fixture(scope="module")
def target():
    return standardise(demo.lognormal(L, seed=1))


def test_bandlimits_and_step_split():
    assert stages.bandlimits(128, 3, 2) == [32, 64, 128]
    assert stages.bandlimits(100, 2, 0) == [50, 100]
    assert stages.bandlimits(64, 1, 2) == [64]
    with pytest.raises(ValueError, match=r"stages=4 starts at L=8, where J_min=3 .* at most 3"):
        stages.bandlimits(64, 4, 3)
    assert stages.split_steps(300, 3) == [75, 75, 150]
    assert stages.split_steps(7, 3) == [2, 1, 4]
    assert stages.split_steps(10, 1) == [10]
    assert sum(stages.split_steps(301, 4)) == 301


def test_a_stage_starts_from_the_previous_fields_at_the_degrees_they_reach(target):
    op = s2scat_core.build(L, 3, 1, mode="ducc")
    rng = np.random.default_rng(0)
    start = np.stack([harmonics.full_from_half(np.tril(rng.standard_normal((8, 8))) + 0j)
                      for _ in range(2)])
    options = dict(optimizer="lbfgs", steps=1, count=2, seed=0, learning_rate=0.05,
                   schedule="cosine", final_lr_fraction=0.01, memory=10, linesearch_steps=20,
                   init="power", precondition=True, weights=None, tolerance=0.0, chunk=1,
                   apodisation=None, constrained=False, pdf_weight=0.0, entry_weights="auto",
                   cross_weight=1.0)
    fresh = engine._prepare(target, L, op, mask=None, second_flm=None, **options)
    started = engine._prepare(target, L, op, mask=None, second_flm=None, start=start, **options)
    halves = np.asarray(engine._view(op, started.carry.x, started.consts)[0])
    np.testing.assert_allclose(halves[:, :8, :8], harmonics.half_from_full(start), atol=1e-14)
    # the finer degrees keep the run's own noise
    noise = np.asarray(engine._view(op, fresh.carry.x, fresh.consts)[0])
    assert np.array_equal(halves[:, 8:], noise[:, 8:])
    with pytest.raises(ValueError, match="start must have shape"):
        engine._prepare(target, L, op, mask=None, second_flm=None, start=start[:1], **options)


def test_staged_run_records_every_stage_on_one_step_axis(target):
    seen = []
    r = engine.synthesize(target, stages=3, callback=lambda p: seen.append(
        (p.step, p.steps, p.samples().shape, len(p.history))), **KW)
    assert r.samples.shape == (2, L, 2 * L - 1) and r.steps == 12
    assert r.history.shape == (13,) and np.all(np.isfinite(r.history))
    assert r.sample_losses.shape[1] == 2 and r.timeline.shape == (r.sample_losses.shape[0], 2)
    assert np.all(np.diff(r.timeline[:, 0]) >= 0) and r.timeline[-1, 0] == 12
    assert np.all(np.diff(r.timeline[:, 1]) >= 0)
    # global steps, the samples at L in every stage, the history of all stages so far
    assert [s[0] for s in seen] == [0, 3, 0 + 3, 6, 6, 9, 12]
    assert all(s[1] == 12 and s[2] == (2, L, 2 * L - 1) and s[3] == s[0] + 1 for s in seen)
    assert np.all(np.isfinite(r.samples)) and harmonics.is_hermitian(r.samples[0])


def test_staged_inpainting_keeps_the_observed_pixels_and_pairs_run(target):
    op = s2scat_core.build(L, 3, 1, mode="ducc")
    observed = masks.draw_gl("band", L, latitude=20.0)
    r = engine.synthesize(target, mask=observed, constrained=True, stages=2, op=op,
                          **{k: v for k, v in KW.items() if k != "mode"})
    # the samples are the completions of the free fields at L: the target where observed
    assert r.free.shape == (2, L, 2 * L - 1)
    t_map = op.to_map(target)
    for sample, free in zip(r.samples, r.free):
        half, completed = params.complete(op, harmonics.half_from_full(free), observed, t_map)
        np.testing.assert_allclose(harmonics.half_from_full(sample), half, atol=1e-12)
        seen = observed == 1
        assert np.array_equal(np.asarray(completed)[seen], np.asarray(t_map)[seen])
    g = standardise(demo.lognormal(L, seed=4))
    pair = engine.synthesize(target, second_flm=g, stages=2, **KW)
    assert pair.samples.shape == pair.second.shape == (2, L, 2 * L - 1)


@pytest.mark.parametrize("stop_at", [3, 9])  # in the first stage, in the last one
def test_staged_run_resumes_bitwise_in_any_stage(target, tmp_path, stop_at):
    whole = engine.synthesize(target, stages=3, **KW)
    path = tmp_path / "run.npz"
    first = engine.synthesize(target, stages=3, checkpoint=path, checkpoint_every=3,
                              callback=lambda p: p.step >= stop_at, **KW)
    assert first.stopped == "callback" and checkpoint.unfinished(path)
    done = engine.resume(path)
    assert np.array_equal(done.samples, whole.samples)
    assert np.array_equal(done.history, whole.history)
    assert not checkpoint.unfinished(path)


def test_too_many_stages_is_one_line_naming_the_key(tmp_path, capsys):
    code = main(["run", "--out", str(tmp_path / "x"), "--set", "statistics.L=16",
                 "--set", "synthesis.stages=4"])
    err = capsys.readouterr().err.strip()
    assert code == 2 and len(err.splitlines()) == 1
    assert "synthesis.stages" in err and "at most" in err
    assert not (tmp_path / "x").exists() or not any((tmp_path / "x").rglob("*.*"))
