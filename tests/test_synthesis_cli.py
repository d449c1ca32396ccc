"""Config schema, the command line (errors: one line, exit 2) and the files a run writes."""

import json
import subprocess
import sys

import numpy as np
import pytest

from synthesis import config as cfg
from synthesis import run as run_mod
from synthesis.cli import main

TINY = ["--set", "statistics.L=16", "--set", "statistics.J_min=1", "--set", "synthesis.steps=10",
        "--set", "synthesis.count=2", "--set", "synthesis.chunk=5", "--set", "render.every=5",
        "--set", "report.thresholds=9", "--quiet"]


# ------------------------------------------------------------------------------ config
def test_quickstart_file_is_the_default_experiment():
    assert cfg.load(cfg.experiments_dir() / "quickstart.toml") == cfg.Experiment()


@pytest.mark.parametrize("path", sorted(cfg.experiments_dir().glob("*.toml")), ids=lambda p: p.stem)
def test_shipped_experiments_are_valid(path):
    exp = cfg.load(path)
    assert exp.experiment.name == path.stem
    assert cfg.from_dict(__import__("tomllib").loads(cfg.to_toml(exp))) == exp


def test_every_field_has_a_description():
    for key, _tp, _default, _unit, doc in cfg.schema_rows():
        assert doc, key


@pytest.mark.parametrize("data, match", [
    ({"synthesis": {"stpes": 3}}, "unknown key 'synthesis.stpes'"),
    ({"bogus": {}}, "unknown key 'bogus'"),
    ({"synthesis": {"steps": "many"}}, "synthesis.steps must be an integer"),
    ({"synthesis": {"optimizer": "sgd"}}, "synthesis.optimizer must be one of"),
    ({"statistics": {"L": 2}}, "statistics.L must be >= 4"),
    ({"statistics": {"J_min": 9}}, "statistics.J_min must be <="),
    ({"render": {"every": 7}}, "multiple of synthesis.chunk"),
    ({"target": {"source": "file"}}, "target.path must name a file"),
    ({"statistics": {"isotropic": 1}}, "true or false"),
])
def test_schema_errors_name_the_key(data, match):
    with pytest.raises(cfg.ConfigError, match=match):
        cfg.from_dict(data)


def test_overrides_parse_toml_values():
    exp = cfg.apply_overrides(cfg.Experiment(), ["statistics.L=32", "statistics.isotropic=true",
                                                 "target.path=some/map.fits",
                                                 "synthesis.weights.S4=0.5"])
    assert exp.statistics.L == 32 and exp.statistics.isotropic is True
    assert exp.target.path == "some/map.fits" and exp.synthesis.weights.S4 == 0.5
    with pytest.raises(cfg.ConfigError, match="key=value"):
        cfg.apply_overrides(exp, ["statistics.L"])


# ------------------------------------------------------------------------------ errors
def _one_line_error(capsys, argv, match):
    code = main(argv)
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2
    assert len(err) == 1 and match in err[0] and "Traceback" not in err[0]


def test_malformed_config_file(tmp_path, capsys):
    bad = tmp_path / "bad.toml"
    bad.write_text("[synthesis]\nsteps = 10\nlearning_rat = 0.1\n")
    _one_line_error(capsys, ["run", str(bad)], "unknown key 'synthesis.learning_rat'")
    bad.write_text("[synthesis\nsteps = ")
    _one_line_error(capsys, ["run", str(bad)], "not valid TOML")
    _one_line_error(capsys, ["run", str(tmp_path / "missing.toml")], "does not exist")
    _one_line_error(capsys, ["run", "no_such_experiment"], "no experiment file")


def test_bad_input_file(tmp_path, capsys):
    bad = tmp_path / "map.npy"
    np.save(bad, np.zeros(100))
    _one_line_error(capsys, ["run", "--set", "target.source='file'", "--set",
                             f"target.path='{bad}'", "--out", str(tmp_path / "out"), "--quiet"],
                    "map.npy")  # --out: runs/quickstart may hold the README's first run
    _one_line_error(capsys, ["encode", str(bad), "--out", str(tmp_path / "s.npz")], "map.npy")


def test_bad_arguments_and_overrides(capsys):
    _one_line_error(capsys, ["run", "--set", "statistics.L=abc"], "statistics.L must be an integer")
    _one_line_error(capsys, ["frobnicate"], "invalid choice")


def test_subprocess_error_has_no_traceback(tmp_path):
    bad = tmp_path / "bad.toml"
    bad.write_text("[statistics]\nL = 'big'\n")
    proc = subprocess.run([sys.executable, "-m", "synthesis", "run", str(bad)],
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2
    assert proc.stderr.strip().count("\n") == 0 and "Traceback" not in proc.stderr
    assert "statistics.L must be an integer" in proc.stderr


# ------------------------------------------------------------------------------ a run
PROMISED = ["config.toml", "samples.npz", "history.csv", "synthesis.gif", "report.png",
            "metrics.json", "frames/frame_00000.png"]


def test_run_writes_every_promised_file(tmp_path, capsys):
    out = tmp_path / "run"
    assert main(["run", "--out", str(out), *TINY]) == 0
    for name in PROMISED:
        assert (out / name).is_file(), name
    assert len(list((out / "frames").glob("frame_*.png"))) == 3  # steps 0, 5, 10
    with np.load(out / "samples.npz") as z:
        assert z["target_flm"].shape == (16, 31)
        assert z["sample_flm"].shape == (2, 16, 31)
        assert z["sample_maps"].shape == (2, 12 * int(z["nside"]) ** 2)
        assert not bool(z["partial"])
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["partial"] is False and metrics["steps"] == 10
    assert metrics["devices"] == {"count": 1, "platform": "cpu", "processes": 1}
    for key in ("cl", "pdf", "minkowski", "loss", "criteria", "statistics"):
        assert key in metrics
    assert cfg.load(out / "config.toml").statistics.L == 16
    assert (out / "history.csv").read_text().splitlines()[0] == "step,mean_loss"
    assert not list(out.glob(".*tmp-*"))
    printed = capsys.readouterr()
    assert "wrote" in printed.out
    assert "steps/s" not in printed.err  # --quiet: no progress bar


def test_interrupted_run_keeps_frames_and_is_marked_partial(tmp_path, monkeypatch):
    original = run_mod.FrameRenderer.draw
    calls = []

    def draw(self, step, *args, **kwargs):
        calls.append(step)
        if len(calls) == 3:
            raise KeyboardInterrupt
        return original(self, step, *args, **kwargs)

    monkeypatch.setattr(run_mod.FrameRenderer, "draw", draw)
    out = tmp_path / "run"
    exp = cfg.apply_overrides(cfg.Experiment(), [a for a in TINY if "=" in a] +
                              ["synthesis.steps=50"])
    outcome = run_mod.run_experiment(exp, out, progress=False)
    assert outcome.partial
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["partial"] is True and metrics["stopped"] == "interrupted"
    assert len(list((out / "frames").glob("frame_*.png"))) == 2
    assert (out / "synthesis.gif").is_file() and (out / "samples.npz").is_file()


def test_encode_batches_inputs(tmp_path, capsys):
    from synthesis import targets

    exp = cfg.Experiment()
    paths = []
    for seed in (1, 2, 3):
        m = targets.demo_map(cfg.apply_overrides(exp, [f"target.seed={seed}"]).target, 16)
        paths.append(str(targets.write_map(m, tmp_path / f"m{seed}.npy")))
    out = tmp_path / "stats.npz"
    assert main(["encode", *paths, "--out", str(out), "--L", "16", "--J-min", "1"]) == 0
    with np.load(out) as z:
        n, d = z["covariances"].shape
        assert n == 3 and d == len(z["statistic"]) == len(z["column"]) == len(z["j1"])
        assert list(z["files"]) == paths
        s2 = z["statistic"] == "S2"
        assert np.allclose(z["covariances"][:, s2], 1.0)  # normalised by their own power
        assert z["column"][np.argmax(z["statistic"] == "S3")].startswith("S3[j1=")
    assert main(["encode", *paths, "--out", str(out), "--L", "16", "--J-min", "1",
                 "--isotropic", "--norm", "none"]) == 0
    with np.load(out) as z:
        assert set(np.unique(z["k1"][z["statistic"] == "S3"])) == {-1}
        s3 = z["statistic"] == "S3"
        assert not np.any(z["j1"][s3] == z["j2"][s3]) and not z["same_scale"]
    assert main(["encode", *paths, "--out", str(out), "--L", "16", "--J-min", "1",
                 "--isotropic", "--same-scale"]) == 0
    with np.load(out) as z:
        s3 = z["statistic"] == "S3"
        assert z["same_scale"] and np.sum(z["j1"][s3] == z["j2"][s3]) == 4  # scales 1..4
    assert "3 input(s)" in capsys.readouterr().out


def test_generate_list_show_schema(tmp_path, capsys):
    assert main(["generate", "--set", "statistics.L=16", "--set", "statistics.J_min=1", "--out", str(tmp_path / "g.fits")]) == 0
    assert (tmp_path / "g.fits").is_file()
    assert main(["list"]) == 0 and "quickstart" in capsys.readouterr().out
    assert main(["show", "filaments"]) == 0 and 'source = "filaments"' in capsys.readouterr().out
    assert main(["schema", "--markdown"]) == 0 and "`statistics.L`" in capsys.readouterr().out
