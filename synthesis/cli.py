"""The ``s2scat-synth`` command (also ``python -m synthesis``).

    s2scat-synth run [CONFIG] [--out DIR] [--set key=value ...] [--quiet] [--gif PATH]
                     [--overwrite] [--distributed]
    s2scat-synth resume OUT_DIR [--quiet] [--gif PATH] [--devices N]   continue from a checkpoint
    s2scat-synth mocks [CONFIG] --batches K --out DIR [--start S] [--set ...] [--distributed]
    s2scat-synth encode FILES... --out stats.npz [--isotropic] [--L 64] [--N 3] [--J-min 0]
                        [--mask MASK.fits] [--batch 64] [--devices N] ...
    s2scat-synth generate [CONFIG] --out map.fits [--set ...]   the demo target as a map
    s2scat-synth list                       shipped experiments
    s2scat-synth show [CONFIG] [--set ...]  the resolved experiment as TOML
    s2scat-synth schema [--markdown]        every key with its default, unit and meaning

``CONFIG`` is a TOML file or the name of a shipped experiment; without it, ``run`` runs
``quickstart``. ``FILES`` may be given as ``@list.txt`` (one path a line). ``--distributed``:
several processes (hosts) started together, ``jax.distributed.initialize()`` from the
environment (docs/devices.md). ``run`` refuses an output folder that already holds files unless
``--overwrite``; ``resume OUT_DIR`` continues the run there from ``OUT_DIR/checkpoint.npz``
(interrupted, or killed: the same samples as a run never stopped).

Exit codes: 0 done; 2 a bad config, input file or argument (one line on stderr naming it);
3 the loss turned NaN or infinite (one line naming the step; the last checkpoint is kept, no
samples are written); 130 Ctrl-C (what there is is written, marked partial; ``resume``
continues).
"""

from __future__ import annotations

import argparse
import sys

from . import config as cfg

PROG = "s2scat-synth"


class _Parser(argparse.ArgumentParser):
    """argparse that reports a usage error as one line (exit code 2)."""

    def error(self, message):
        self.exit(2, f"{self.prog}: error: {message} (see {self.prog} --help)\n")


def _parser() -> argparse.ArgumentParser:
    p = _Parser(prog=PROG, description="Synthesise spherical maps from their directional "
                "scattering covariances, and encode maps into them.", fromfile_prefix_chars="@")
    sub = p.add_subparsers(dest="command", required=True, parser_class=_Parser)

    r = sub.add_parser("run", help="run an experiment (default: quickstart)")
    r.add_argument("config", nargs="?", help="experiment TOML file or shipped experiment name")
    r.add_argument("--out", help="output folder (default: output.dir or runs/<name>)")
    r.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                   help="override a key, e.g. --set statistics.L=32 (repeatable)")
    r.add_argument("--quiet", action="store_true", help="no progress bar")
    r.add_argument("--gif", metavar="PATH", help="also copy the GIF to PATH (e.g. "
                   "assets/synthesis.gif)")
    r.add_argument("--overwrite", action="store_true", help="replace the run in an output "
                   "folder that already holds one")
    r.add_argument("--distributed", action="store_true", help="one run over several processes' "
                   "devices (jax.distributed.initialize() from the environment; process 0 "
                   "writes)")

    u = sub.add_parser("resume", help="continue an interrupted or killed run from its checkpoint")
    u.add_argument("out_dir", metavar="OUT_DIR", help="the run's output folder (holds "
                   "checkpoint.npz)")
    u.add_argument("--quiet", action="store_true", help="no progress bar")
    u.add_argument("--gif", metavar="PATH", help="also copy the GIF to PATH")
    u.add_argument("--devices", type=_devices, default=None, help="continue on \"all\" or N "
                   "devices (default: the run's synthesis.devices)")

    m = sub.add_parser("mocks", help="K batches of samples with distinct seeds, one file each "
                       "(resumable: batches written are skipped)")
    m.add_argument("config", nargs="?", help="experiment TOML file or shipped experiment name")
    m.add_argument("--batches", type=int, required=True, help="number of batches K")
    m.add_argument("--out", required=True, help="output folder (mocks_00000.npz, ...)")
    m.add_argument("--start", type=int, default=0, help="first batch index (default 0); batch "
                   "k uses seed experiment.seed + k")
    m.add_argument("--set", action="append", default=[], metavar="KEY=VALUE")
    m.add_argument("--quiet", action="store_true", help="no progress bar")
    m.add_argument("--distributed", action="store_true", help="several processes: process p "
                   "of P takes the batches k % P == p on its own devices")

    e = sub.add_parser("encode", help="scattering covariances of maps/coefficients as rows")
    e.add_argument("files", nargs="+", help="HEALPix FITS/.npy maps, MW/GL .npy maps, .npy or "
                   "FITS coefficients")
    e.add_argument("--out", required=True, help="output .npz")
    e.add_argument("--L", type=int, default=64, help="band-limit (default 64)")
    e.add_argument("--N", type=int, default=3, help="directions parameter (default 3)")
    e.add_argument("--J-min", type=int, default=0, dest="J_min", help="first scale (default 0)")
    e.add_argument("--delta-j", type=int, default=None, dest="delta_j",
                   help="pair scales up to j1 + delta_j only")
    e.add_argument("--isotropic", action="store_true", help="sum S3, S4 over directions")
    e.add_argument("--same-scale", action="store_true", dest="same_scale",
                   help="also pair each scale with itself in S3, S4 (not in S2SCAT 0.0.3)")
    e.add_argument("--format", default="auto", choices=("auto", "healpix", "mw", "gl", "alm"),
                   help="what the files hold (2D real .npy maps need mw or gl)")
    e.add_argument("--field", type=int, default=0, help="FITS column of HEALPix maps")
    e.add_argument("--norm", default="self", choices=("self", "first", "none"),
                   help="normalise by each input's own power (self), the first input's, or not")
    e.add_argument("--standardise", action="store_true", help="zero mean, unit variance first")
    e.add_argument("--mode", default="auto", help="transform backend (default auto)")
    e.add_argument("--mask", help="mask file (HEALPix FITS/.npy, any nside, [0, 1]): statistics "
                   "over each map's observed sky")
    e.add_argument("--apodisation", type=float, default=None,
                   help="with --mask: erosion at scale j, sigma = apodisation * 180/2^j deg "
                   "(default 1)")
    e.add_argument("--batch", type=int, default=64, help="files read and encoded together "
                   "(default 64; memory holds one batch of maps)")
    e.add_argument("--devices", type=_devices, default="all", help="shard each batch over "
                   "\"all\" (default) or N devices")
    e.add_argument("--quiet", action="store_true", help="no progress bar")

    g = sub.add_parser("generate", help="write an experiment's demo target as a HEALPix map")
    g.add_argument("config", nargs="?", help="experiment whose [target] is generated (default "
                   "quickstart)")
    g.add_argument("--out", required=True, help="output map, .fits (float32) or .npy (float64)")
    g.add_argument("--set", action="append", default=[], metavar="KEY=VALUE")

    sub.add_parser("list", help="list the shipped experiments")
    s = sub.add_parser("show", help="print the resolved experiment as TOML")
    s.add_argument("config", nargs="?")
    s.add_argument("--set", action="append", default=[], metavar="KEY=VALUE")
    sc = sub.add_parser("schema", help="every experiment key, default, unit and meaning")
    sc.add_argument("--markdown", action="store_true", help="as a Markdown table")
    return p


def _devices(text: str):
    """``--devices``: ``all`` or a count (checked against the devices by the command)."""
    if text == "all":
        return text
    try:
        return int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected 'all' or an integer, got {text!r}") from None


def _distributed(args) -> None:
    """``--distributed``: join the other processes before JAX is used."""
    if getattr(args, "distributed", False):
        from .devices import initialize

        initialize()


def load_experiment(name_or_path: str | None, overrides=()) -> cfg.Experiment:
    """The experiment named on the command line (default: quickstart) with ``--set`` applied."""
    path = cfg.find_experiment(name_or_path)
    exp = cfg.load(path) if path is not None else cfg.Experiment()
    return cfg.apply_overrides(exp, overrides) if overrides else exp


def _run(args) -> int:
    from .run import run_experiment

    exp = load_experiment(args.config, args.set)
    _distributed(args)
    outcome = run_experiment(exp, args.out, progress=not args.quiet, overwrite=args.overwrite)
    if not outcome.metrics:  # another process of a multi-host run: process 0 reports
        return 130 if outcome.partial else 0
    return _summary(args, outcome)


def _resume(args) -> int:
    from .run import resume_experiment

    outcome = resume_experiment(args.out_dir, progress=not args.quiet, devices=args.devices)
    if outcome.result is None:  # finished before: nothing done (said on stderr)
        return 0
    return _summary(args, outcome)


def _summary(args, outcome) -> int:
    """Copy the GIF for ``--gif``, print the one-line summary; the exit code."""
    gif = outcome.out_dir / "synthesis.gif"
    if args.gif and gif.is_file():
        from .io import atomic_path

        with atomic_path(args.gif) as tmp:
            tmp.write_bytes(gif.read_bytes())
    m = outcome.metrics
    summary = [f"wrote {outcome.out_dir}/ ({len(outcome.files)} files) in {m['wall_time_s']:.1f} s"]
    if "loss" in m:
        summary.append(f"loss x{m['loss']['ratio']:.1e}")
    if "cl" in m:
        summary.append(f"C_l error {m['cl']['rel_error']:.1%}, " + _skewness_summary(m["pdf"]))
    print("; ".join(summary) + ("  [PARTIAL]" if outcome.partial else ""))
    return 130 if outcome.partial else 0


def _skewness_summary(pdf: dict) -> str:
    """The skewness error the run's criterion reads; an inpainting run's is the completed
    maps', its masked region's beside it."""
    if "skewness_completed_rel_error" in pdf:
        return (f"skewness error {pdf['skewness_completed_rel_error']:.1%} (completed maps; "
                f"masked region {pdf['skewness_rel_error']:.1%})")
    return f"skewness error {pdf['skewness_rel_error']:.1%}"


def _output_file(path: str) -> str:
    """``--out`` of a file: its folder must exist (a typo is not silently created)."""
    from pathlib import Path

    folder = Path(path).parent
    if not folder.is_dir():
        raise ValueError(f"--out {path}: folder {str(folder)!r} does not exist")
    return path


def _encode(args) -> int:
    from . import encode

    _output_file(args.out)
    table = encode.encode(args.files, L=args.L, N=args.N, J_min=args.J_min,
                          isotropic=args.isotropic, delta_j=args.delta_j,
                          same_scale=args.same_scale, format=args.format,
                          field=args.field, norm=args.norm, mode=args.mode,
                          standardise=args.standardise, mask=args.mask,
                          apodisation=args.apodisation, batch=args.batch,
                          devices=args.devices, progress=not args.quiet)
    path = encode.write(table, args.out)
    n, d = table["covariances"].shape
    print(f"wrote {path}: {n} input(s) x {d} statistics")
    return 0


def _mocks(args) -> int:
    from .mocks import run_mocks

    exp = load_experiment(args.config, args.set)
    _distributed(args)
    outcome = run_mocks(exp, args.out, args.batches, start=args.start,
                        progress=not args.quiet, distributed=args.distributed)
    print(f"{outcome.out_dir}/: {len(outcome.written)} batch(es) written, "
          f"{len(outcome.skipped)} already there" + ("  [INTERRUPTED]" if outcome.interrupted
                                                    else ""))
    return 130 if outcome.interrupted else 0


def _generate(args) -> int:
    from . import targets

    exp = load_experiment(args.config, args.set)
    out = _output_file(args.out)
    bandlimit = exp.target.bandlimit or exp.statistics.L
    m = targets.demo_map(exp.target, bandlimit)
    path = targets.write_map(m, out)
    print(f"wrote {path}: {exp.target.source} field, seed {exp.target.seed}, band-limit "
          f"{bandlimit}, {m.size} HEALPix pixels")
    return 0


def _list(_args) -> int:
    for path in sorted(cfg.experiments_dir().glob("*.toml")):
        try:
            exp = cfg.load(path)
            print(f"{path.stem:<22} {exp.experiment.description}")
        except cfg.ConfigError as err:
            print(f"{path.stem:<22} (invalid: {err})")
    return 0


def _show(args) -> int:
    print(cfg.to_toml(load_experiment(args.config, args.set)), end="")
    return 0


def _schema(args) -> int:
    rows = list(cfg.schema_rows())
    if args.markdown:
        print("| key | type | default | unit | meaning |\n|---|---|---|---|---|")
        for key, tp, default, unit, doc in rows:
            print(f"| `{key}` | {tp} | `{cfg._toml_value(default)}` | {unit} | {doc} |")
    else:
        for key, tp, default, unit, doc in rows:
            unit = f" [{unit}]" if unit else ""
            print(f"{key} = {cfg._toml_value(default)}  ({tp}{unit}) {doc}")
    return 0


COMMANDS = {"run": _run, "resume": _resume, "mocks": _mocks, "encode": _encode,
            "generate": _generate, "list": _list, "show": _show, "schema": _schema}


def main(argv=None) -> int:
    """Entry point; returns the exit code (0 ok, 2 bad input, 3 diverged, 130 interrupted)."""
    from .loop import Diverged

    parser = _parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as exit_:
        return int(exit_.code or 0)
    try:
        return COMMANDS[args.command](args)
    except Diverged as err:
        print(f"{PROG}: diverged: {_one_line(err)}", file=sys.stderr)
        return 3
    except (ValueError, TypeError, OSError) as err:
        print(f"{PROG}: error: {_one_line(err)}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"{PROG}: interrupted", file=sys.stderr)
        return 130


def _one_line(err: BaseException) -> str:
    text = str(err).strip()
    return text.splitlines()[0] if text else type(err).__name__


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
