"""Bad input, swept: malformed configs, files and arguments on the command line, each ending with
exit code 2 and one line on stderr naming the problem (no traceback, no new file), before any
compilation; and the Python API's errors naming the argument."""

import math

import healpy as hp
import numpy as np
import pytest

import s2scat_core
from s2scat_core import _memory
from synthesis import engine
from synthesis.cli import main
from synthesis.targets import demo, standardise

SMALL = ["--set", "statistics.L=16", "--set", "statistics.J_min=1", "--set", "synthesis.steps=5",
         "--set", "synthesis.chunk=5", "--set", "render.every=5", "--quiet"]


def _toml(tmp, text):
    (tmp / "exp.toml").write_text(text)
    return ["run", str(tmp / "exp.toml"), "--out", str(tmp / "out"), "--quiet"]


def _target(tmp, name, make, *extra):
    """``run`` with ``target.path`` = ``tmp/name``, written by ``make(path)``."""
    path = tmp / name
    if make is not None:
        make(path)
    return ["run", "--out", str(tmp / "out"), *SMALL, "--set", "target.source=file", "--set",
            f"target.path={path}", *extra]


def _npy(array):
    return lambda path: np.save(path, array)


def _healpix(nside, bad=None):
    m = np.random.default_rng(0).standard_normal(hp.nside2npix(nside))
    if bad is not None:
        m[5] = bad
    return m


def _fits(path, nside=8):
    hp.write_map(str(path), _healpix(nside), dtype=np.float64)


def _truncated_fits(path):
    _fits(path)
    data = path.read_bytes()
    path.write_bytes(data[:len(data) // 2])


def _written(tmp, name):
    np.save(tmp / name, _healpix(8))
    return [str(tmp / name)]


def _two_inputs(tmp):
    np.save(tmp / "a.npy", _healpix(8))
    np.save(tmp / "b.npy", np.zeros((16, 31)))  # a real 2D grid: MW or GL? not said
    return ["encode", str(tmp / "a.npy"), str(tmp / "b.npy"), "--out", str(tmp / "s.npz"),
            "--L", "16"]


def _inside_a_file(tmp):
    (tmp / "file").write_text("x")
    return ["run", "--out", str(tmp / "file" / "run"), *SMALL]


def _full_folder(tmp):
    (tmp / "out").mkdir()
    (tmp / "out" / "samples.npz").write_bytes(b"old")
    return ["run", "--out", str(tmp / "out"), *SMALL]


def _empty_folder(tmp):
    (tmp / "out").mkdir()
    return ["resume", str(tmp / "out")]


CASES = {
    # the experiment file
    "toml syntax": (lambda t: _toml(t, "[synthesis\nsteps = "), "not valid TOML"),
    "unknown key": (lambda t: _toml(t, "[synthesis]\nstpes = 3\n"), "'synthesis.stpes'"),
    "unknown section": (lambda t: _toml(t, "[synthesys]\nsteps = 3\n"), "'synthesys'"),
    "missing file": (lambda t: ["run", str(t / "none.toml")], "does not exist"),
    "not utf-8": (lambda t: (t / "x.toml").write_bytes(b"\xff\xfe[") and
                  ["run", str(t / "x.toml")], "cannot read"),
    "string for int": (lambda t: _toml(t, "[synthesis]\nsteps = 'many'\n"),
                       "synthesis.steps must be an integer"),
    "int for bool": (lambda t: _toml(t, "[statistics]\nisotropic = 1\n"),
                     "statistics.isotropic must be true or false"),
    "table for value": (lambda t: _toml(t, "[statistics.L]\nx = 1\n"), "statistics.L must be"),
    # --set values
    "L = 0": (lambda t: ["run", "--set", "statistics.L=0"], "statistics.L must be >= 4"),
    "L < 0": (lambda t: ["run", "--set", "statistics.L=-64"], "statistics.L must be >= 4"),
    "N = 0": (lambda t: ["run", "--set", "statistics.N=0"], "statistics.N must be >= 1"),
    "J_min >= j_max": (lambda t: ["run", "--set", "statistics.J_min=6"],
                       "statistics.J_min must be <= 5"),
    "delta_j < 0": (lambda t: ["run", "--set", "statistics.delta_j=-1"],
                    "statistics.delta_j must be >= 0"),
    "steps = 0": (lambda t: ["run", "--set", "synthesis.steps=0"], "synthesis.steps must be >= 1"),
    "steps < 0": (lambda t: ["run", "--set", "synthesis.steps=-5"], "synthesis.steps must be >= 1"),
    "count = 0": (lambda t: ["run", "--set", "synthesis.count=0"], "synthesis.count must be >= 1"),
    "negative learning rate": (lambda t: ["run", "--set", "synthesis.learning_rate=-0.1"],
                               "synthesis.learning_rate must be >= 0"),
    "NaN learning rate": (lambda t: ["run", "--set", "synthesis.learning_rate=nan"],
                          "synthesis.learning_rate must be a number"),
    "inf tolerance": (lambda t: ["run", "--set", "synthesis.tolerance=inf"],
                      "synthesis.tolerance must be a number"),
    "unknown optimiser": (lambda t: ["run", "--set", "synthesis.optimizer=sgd"],
                          "synthesis.optimizer must be one of"),
    "unknown mode": (lambda t: ["run", "--set", "statistics.mode=fast"],
                     "statistics.mode must be 'auto' or one of"),
    "unknown source": (lambda t: ["run", "--set", "target.source=sky"],
                       "target.source must be one of"),
    "negative checkpoint.every": (lambda t: ["run", "--set", "checkpoint.every=-1"],
                                  "checkpoint.every must be >= 0"),
    "--set without =": (lambda t: ["run", "--set", "statistics.L"], "--set expects key=value"),
    "--set unknown key": (lambda t: ["run", "--set", "statistics.LL=32"],
                          "unknown key 'statistics.LL'"),
    "--set unknown section": (lambda t: ["show", "--set", "L=32"], "unknown key 'L'"),
    "unknown command": (lambda t: ["frobnicate"], "invalid choice"),
    # target files
    "missing map": (lambda t: _target(t, "none.fits", None), "none.fits' does not exist"),
    "empty FITS": (lambda t: _target(t, "e.fits", lambda p: p.write_bytes(b"")),
                   "e.fits: not a readable FITS file"),
    "truncated FITS": (lambda t: _target(t, "t.fits", _truncated_fits), "t.fits: not a HEALPix "
                       "map FITS file (File may have been truncated"),
    "corrupt FITS": (lambda t: _target(t, "c.fits", lambda p: p.write_bytes(b"SIMPLE junk" * 300)),
                     "c.fits: not a readable FITS file"),
    "wrong HEALPix length": (lambda t: _target(t, "m.npy", _npy(np.zeros(100))),
                             "12 nside^2 pixels"),
    "NaN pixel": (lambda t: _target(t, "m.npy", _npy(_healpix(8, np.nan))), "non-finite pixel"),
    "inf pixel": (lambda t: _target(t, "m.npy", _npy(_healpix(8, np.inf))), "non-finite pixel"),
    "complex map": (lambda t: _target(t, "m.npy", _npy(_healpix(8) + 0j), "--set",
                                      "target.format=healpix"), "a map must be real"),
    "3-D array": (lambda t: _target(t, "m.npy", _npy(np.zeros((4, 16, 31)))), "shape (4, 16, 31)"),
    "text .npy": (lambda t: _target(t, "m.npy", lambda p: p.write_text("1 2 3")),
                  "m.npy: not a .npy file"),
    "alm of the wrong size": (lambda t: _target(t, "a.npy", _npy(np.zeros(100, complex))),
                              "a.npy: healpy packed alm must be 1D with (lmax+1)(lmax+2)/2"),
    "alm grid of the wrong shape": (lambda t: _target(t, "a.npy", _npy(np.zeros((16, 30)) + 0j)),
                                    "(L0, 2L0-1)"),
    "L above the map's": (lambda t: _target(t, "m.fits", _fits, "--set", "statistics.L=32"),
                          "L=32 is above 3 nside = 24"),
    "unknown extension": (lambda t: _target(t, "m.txt", lambda p: p.write_text("0")),
                          "unknown file type"),
    "missing mask": (lambda t: ["run", "--out", str(t / "out"), *SMALL, "--set",
                                f"target.mask={t / 'mask.fits'}"], "mask.fits"),
    # output folders
    "--out inside a file": (_inside_a_file, "is a file, not a folder"),
    "--out holds a run": (_full_folder, "--overwrite"),
    "resume without checkpoint": (_empty_folder, "holds no checkpoint"),
    "resume a missing folder": (lambda t: ["resume", str(t / "none")], "is not a folder"),
    # encode and generate
    "encode a missing file": (lambda t: ["encode", str(t / "none.npy"), "--out", str(t / "s.npz")],
                              "none.npy' does not exist"),
    "encode mixed inputs": (_two_inputs, "b.npy: a real 2D array of shape (16, 31)"),
    "encode L = 0": (lambda t: ["encode", "x.npy", "--out", str(t / "s.npz"), "--L", "0"],
                     "L must be >= 2"),
    "encode delta_j = 0": (lambda t: ["encode", "x.npy", "--out", str(t / "s.npz"), "--L", "16",
                                      "--delta-j", "0"], "delta_j must be >= 1"),
    "encode --batch 0": (lambda t: ["encode", "x.npy", "--out", str(t / "s.npz"), "--L", "16",
                                    "--batch", "0"], "--batch must be an integer >= 1"),
    "encode --devices too many": (lambda t: ["encode", *_written(t, "x.npy"), "--out",
                                             str(t / "s.npz"), "--L", "16", "--devices", "64"],
                                  "--devices = 64, but JAX sees"),
    "mocks --batches 0": (lambda t: ["mocks", "--out", str(t / "m"), "--batches", "0"],
                          "--batches must be an integer >= 1"),
    "mocks --start < 0": (lambda t: ["mocks", "--out", str(t / "m"), "--batches", "2", "--start",
                                     "-1"], "--start must be an integer >= 0"),
    "mocks too many devices": (lambda t: ["mocks", "--out", str(t / "m"), "--batches", "1",
                                          *SMALL, "--set", "synthesis.devices=64"],
                               "synthesis.devices = 64, but JAX sees"),
    "mocks of a missing map": (lambda t: ["mocks", "--out", str(t / "m"), "--batches", "1",
                                          *SMALL, "--set", "target.source=file", "--set",
                                          f"target.path={t / 'none.fits'}"], "none.fits"),
    "generate into a missing folder": (lambda t: ["generate", "--out", str(t / "no" / "m.fits")],
                                       "does not exist"),
    "generate a file target": (lambda t: ["generate", "--set", "target.source=file", "--set",
                                          "target.path=x.fits", "--out", str(t / "m.fits")],
                               "target.source must be 'lognormal' or 'filaments'"),
}


def _files(folder):
    return {p for p in folder.rglob("*") if p.is_file()}


@pytest.mark.parametrize("case", list(CASES), ids=list(CASES))
def test_bad_input_ends_with_one_line_and_exit_code_2(case, tmp_path, capfd, monkeypatch):
    monkeypatch.chdir(tmp_path)  # runs/<name> would land here
    make, expected = CASES[case]
    argv = make(tmp_path)
    before = _files(tmp_path)
    code = main(argv)
    err = capfd.readouterr().err  # the file descriptor: what libraries print is seen too
    lines = err.strip().splitlines()
    assert code == 2, err
    assert len(lines) == 1 and expected in lines[0], err
    assert lines[0].startswith("s2scat-synth: error: ") and "Traceback" not in err
    assert _files(tmp_path) == before  # nothing written, not even a partial file


def test_precompute_too_large_for_memory_fails_before_the_run(tmp_path, capsys, monkeypatch):
    monkeypatch.setattr(_memory, "available", lambda: {"host": 10 ** 5, "device": None})
    out = tmp_path / "out"
    assert main(["run", "--out", str(out), *SMALL, "--set", "statistics.mode=precompute"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "use mode 'recursive' or 'ducc'" in err[0]
    assert not _files(tmp_path)


# ------------------------------------------------------------------------------ Python API
L = 8


@pytest.fixture(scope="module")
def op():
    return s2scat_core.build(L, 2, 1)


@pytest.mark.parametrize("call, match", [
    (lambda op: s2scat_core.build(0, 3), "L must be >= 2"),
    (lambda op: s2scat_core.build(16, 0), "N must be >= 1"),
    (lambda op: s2scat_core.build(16, 3, 4), "J_min must be <= 3"),
    (lambda op: s2scat_core.build(16, 3, delta_j=0), "delta_j must be >= 1"),
    (lambda op: s2scat_core.build(16, 3, mode="fast"), "mode must be one of"),
    (lambda op: op.scatter(np.zeros((L + 1, 2 * L + 1), complex)), "shape"),
    (lambda op: op.scatter(np.full((L, 2 * L - 1), np.nan, complex)), "finite"),
    (lambda op: op.norm(np.zeros((3, 4))), "shape"),
])
def test_api_errors_name_the_argument(op, call, match):
    with pytest.raises(ValueError, match=match):
        call(op)


@pytest.mark.parametrize("kwargs, match", [
    ({"count": 0}, "count must be >= 1"),
    ({"steps": -1}, "steps must be >= 0"),
    ({"learning_rate": math.nan, "optimizer": "adam"}, "learning_rate must be a finite number"),
    ({"checkpoint_seconds": -1.0, "checkpoint": "c.npz"}, "checkpoint_seconds must be"),
])
def test_synthesize_errors_name_the_argument(kwargs, match):
    target = standardise(demo.lognormal(L, seed=1))
    with pytest.raises(ValueError, match=match):
        engine.synthesize(target, L=L, N=2, J_min=1, mode="ducc", **kwargs)


def test_resume_of_no_checkpoint_names_the_file(tmp_path):
    with pytest.raises(ValueError, match="none.npz' does not exist"):
        engine.resume(tmp_path / "none.npz")
