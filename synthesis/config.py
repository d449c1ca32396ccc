"""The experiment schema: TOML file -> validated, frozen :class:`Experiment`.

Every field has a default (the defaults *are* the ``quickstart`` experiment), a unit and a
one-line description; ``s2scat-synth schema`` prints them all. Loading is strict:

* an unknown key is an error naming it (``unknown key 'synthesis.stpes'``) and the keys allowed
  in its table;
* a value of the wrong type, outside its range or not among its choices is an error naming the
  key, what was expected and what came;
* ``--set key=value`` overrides use the same dotted keys (``statistics.L=32``); the value is
  read as a TOML value, or as a bare string if it is not one (``target.path=map.fits``).

Relative paths in a file (``target.path``) are resolved against the folder of that file.
"""

from __future__ import annotations

import dataclasses
import math
import tomllib
import typing
from pathlib import Path

__all__ = ["ConfigError", "Experiment", "load", "from_dict", "apply_overrides", "to_dict",
           "to_toml", "schema_rows", "find_experiment", "experiments_dir"]


class ConfigError(ValueError):
    """A malformed experiment file or override; the message names the key."""


def option(default, unit: str = "", doc: str = "", *, choices=None, minimum=None, maximum=None):
    """A schema field: default, unit (``""`` if dimensionless), description and constraints."""
    return dataclasses.field(default=default, metadata={
        "unit": unit, "doc": doc, "choices": choices, "minimum": minimum, "maximum": maximum})


def section(cls):
    """A nested table whose default is ``cls()``."""
    return dataclasses.field(default_factory=cls, metadata={"section": True})


# ------------------------------------------------------------------------------- schema
@dataclasses.dataclass(frozen=True)
class ExperimentInfo:
    name: str = option("quickstart", "", "experiment name; the default output folder is runs/<name>")
    description: str = option("Lognormal large-scale-structure-like field, L = 64, 4 samples by L-BFGS",
                              "", "one line shown in the report")
    seed: int = option(0, "", "seed of the initial noise of the samples (same seed, same samples)",
                       minimum=0)


@dataclasses.dataclass(frozen=True)
class Lognormal:
    sigma: float = option(0.8, "", "standard deviation of the Gaussian field g before "
                          "exponentiation, delta = exp(g - sigma^2/2) - 1 (sets the skewness)",
                          minimum=1e-3, maximum=5.0)
    distance: float = option(200.0, "Mpc/h", "comoving distance of the thin shell; C_ell = "
                             "P((ell + 1/2) / distance) (Limber)", minimum=1.0)
    gamma: float = option(0.2, "", "BBKS shape parameter Gamma = Omega_m h of the matter power "
                          "spectrum", minimum=1e-3)
    n_s: float = option(0.96, "", "primordial spectral index", minimum=-3.0, maximum=4.0)


@dataclasses.dataclass(frozen=True)
class Filaments:
    count: int = option(120, "filaments", "number of filaments (great-circle arcs)", minimum=1)
    length: float = option(40.0, "deg", "mean arc length (exponential distribution)", minimum=0.1)
    width: float = option(2.5, "deg", "Gaussian cross-section standard deviation", minimum=0.01)
    orientation: float = option(0.0, "deg", "mean angle of the filaments from the local east "
                                "direction (0 = along parallels, 90 = along meridians)")
    spread: float = option(15.0, "deg", "standard deviation of the filament angle about "
                           "'orientation' (>= 180: isotropic)", minimum=0.0)
    background: float = option(0.15, "", "rms of a Gaussian red-noise background, relative to "
                               "the filaments' rms", minimum=0.0)


@dataclasses.dataclass(frozen=True)
class Band:
    latitude: float = option(20.0, "deg", "drawn mask 'band': masked where |latitude| < this "
                             "(a galactic-plane-like cut, in the map's coordinates)",
                             minimum=0.0, maximum=89.0)


@dataclasses.dataclass(frozen=True)
class Cap:
    lon: float = option(0.0, "deg", "drawn mask 'cap': longitude of the footprint's centre")
    lat: float = option(90.0, "deg", "latitude of the footprint's centre", minimum=-90.0,
                        maximum=90.0)
    radius: float = option(60.0, "deg", "radius of the observed footprint", minimum=1.0,
                           maximum=180.0)


@dataclasses.dataclass(frozen=True)
class _Field:
    """The keys that say where one field comes from (shared by [target] and [target.second])."""

    source: str = option("lognormal", "", "'lognormal' or 'filaments' (generated demo fields) or "
                         "'file'", choices=("lognormal", "filaments", "file"))
    path: str = option("", "", "file for source = 'file': HEALPix map (.fits or 1D .npy), MW/GL map "
                       "(2D real .npy), coefficients (2D complex .npy in s2fft layout, or healpy "
                       "alm .fits); relative to the experiment file")
    format: str = option("auto", "", "what the file holds: 'auto' (HEALPix map or alm by content), "
                         "'healpix', 'mw', 'gl' (2D .npy map grids: must be said), 'alm'",
                         choices=("auto", "healpix", "mw", "gl", "alm"))
    field: int = option(0, "", "FITS column (field) of a HEALPix map file", minimum=0)
    seed: int = option(1, "", "seed of a generated demo field", minimum=0)
    bandlimit: int = option(0, "", "band-limit at which a demo field is generated before being "
                            "band-limited to statistics.L (0: statistics.L)", minimum=0)
    standardise: bool = option(True, "", "zero mean and unit variance of the band-limited map "
                               "(f_00 = 0, sum_{l>=1,m} |f_lm|^2 / 4 pi = 1; over the observed "
                               "sky when masked)")
    lognormal: Lognormal = section(Lognormal)
    filaments: Filaments = section(Filaments)


@dataclasses.dataclass(frozen=True)
class Second(_Field):
    source: str = option("none", "", "a second field, synthesised jointly with the first (auto "
                         "and cross statistics matched): 'none', or as target.source",
                         choices=("none", "lognormal", "filaments", "file"))


@dataclasses.dataclass(frozen=True)
class Target(_Field):
    paths: tuple = option((), "", "an ensemble of files for source = 'file' (globs allowed, "
                          "relative to the experiment file): the target statistics are their "
                          "mean; replaces path")
    members: int = option(1, "fields", "an ensemble of demo fields, seeds seed, seed + 1, ...: "
                          "the target statistics are their mean", minimum=1)
    mask: str = option("", "", "sky mask of the target: '' (full sky), a file (HEALPix FITS or "
                       "1D .npy, any nside, values in [0, 1], 1 = observed), or a drawn mask "
                       "'band' or 'cap' ([target.band], [target.cap]); shared by a second field")
    mask_field: int = option(0, "", "FITS column (field) of a mask file", minimum=0)
    band: Band = section(Band)
    cap: Cap = section(Cap)
    second: Second = section(Second)


@dataclasses.dataclass(frozen=True)
class Statistics:
    L: int = option(64, "", "harmonic band-limit (l < L) of target, samples and statistics",
                    minimum=4, maximum=1024)
    N: int = option(3, "", "azimuthal band-limit of the wavelets (2N-1 directions)", minimum=1)
    J_min: int = option(2, "", "first wavelet scale (scale j covers 2^(j-1) < l < 2^(j+1))",
                        minimum=0)
    delta_j: int = option(0, "", "pair scales j1 < j2 <= j1 + delta_j only (0: all pairs)",
                          minimum=0)
    isotropic: bool = option(False, "", "sum S3 and S4 over directions")
    same_scale: bool = option(True, "", "also pair each scale with itself in S3 and S4 (j2 = j1), "
                              "which S2SCAT 0.0.3 leaves out: the samples' pixel skewness comes "
                              "closer to the target's (false: S2SCAT's statistics exactly)")
    mode: str = option("auto", "", "transform backend: 'auto' ('ducc' on CPU from L = 64 when "
                       "available, else 'precompute'), or a name in "
                       "s2scat_core.transforms.BACKENDS")
    apodisation: float = option(1.0, "", "with a mask: erosion of the mask at scale j by a "
                                "Gaussian of sigma = apodisation * 180 / 2^j deg "
                                "(s2scat_core.masks)", minimum=0.05, maximum=10.0)


@dataclasses.dataclass(frozen=True)
class Weights:
    mean: float = option(1.0, "", "weight of the mean term of the loss", minimum=0.0)
    var: float = option(1.0, "", "weight of the variance term", minimum=0.0)
    S1: float = option(1.0, "", "weight of S1", minimum=0.0)
    S2: float = option(1.0, "", "weight of S2", minimum=0.0)
    S3: float = option(1.0, "", "weight of S3", minimum=0.0)
    S4: float = option(1.0, "", "weight of S4", minimum=0.0)
    cross: float = option(1.0, "", "with target.second: weight of the pair's cross statistics "
                          "(times each statistic's own weight)", minimum=0.0)
    pdf: float = option(1.0, "", "weight of the pixel-PDF term: W2^2 between the samples' and "
                        "the target's area-weighted pixel values, in units of the target's "
                        "variance (0: none; 1 brings the quickstart's pixel skewness from 19 % "
                        "to 2 % of the target's)", minimum=0.0)


@dataclasses.dataclass(frozen=True)
class Synthesis:
    count: int = option(4, "samples", "number of samples, optimised together as one batch",
                        minimum=1)
    steps: int = option(600, "steps", "step budget (optimiser iterations)", minimum=1)
    optimizer: str = option("lbfgs", "", "'lbfgs' (optax.lbfgs, zoom line search) or 'adam'",
                            choices=("lbfgs", "adam"))
    learning_rate: float = option(0.05, "", "Adam's initial learning rate, in units of the "
                                  "(preconditioned) parameters; unused by L-BFGS", minimum=0.0)
    schedule: str = option("cosine", "", "Adam's learning-rate schedule over the step budget",
                           choices=("constant", "cosine", "exponential"))
    final_lr_fraction: float = option(0.01, "", "final learning rate / initial (cosine, "
                                      "exponential)", minimum=0.0, maximum=1.0)
    memory: int = option(10, "", "L-BFGS memory (pairs of past steps)", minimum=1)
    linesearch_steps: int = option(20, "", "L-BFGS: most zoom line-search evaluations a step",
                                   minimum=1)
    init: str = option("power", "", "initial noise: 'power' (Gaussian with the target's C_ell) "
                       "or 'white' (equal variance in every (l, m), the target's total variance)",
                       choices=("power", "white"))
    precondition: bool = option(True, "", "optimise flm / sqrt(C_ell^target) instead of flm "
                                "(same minima, better conditioned)")
    tolerance: float = option(0.0, "", "stop a sample when loss <= tolerance * its initial loss "
                              "(0: run the whole budget)", minimum=0.0, maximum=0.99)
    chunk: int = option(10, "steps", "steps per compiled chunk; the host reports progress "
                        "between chunks", minimum=1)
    stages: int = option(1, "", "coarse-to-fine: optimise at L/2^(stages-1), then double the "
                         "band-limit each stage, each starting from the previous one's fields; "
                         "steps is the whole budget (half to the last stage)", minimum=1)
    constrained: bool = option(False, "", "with target.mask: inpainting; every sample is the "
                               "target on the observed pixels and synthesised in the masked "
                               "region only")
    entry_weights: str = option("auto", "", "'auto': an ensemble of >= 3 targets weights each "
                                "entry by 1/sigma^2 of the members' spread; 'none': all 1",
                                choices=("auto", "none"))
    devices: int | str = option("all", "devices", "JAX devices the batch is sharded over: 'all' "
                                "or a number N >= 1 (count padded to a multiple of it; same "
                                "samples to 1e-10 as on one device; docs/devices.md)")
    weights: Weights = section(Weights)


@dataclasses.dataclass(frozen=True)
class Render:
    enabled: bool = option(True, "", "write PNG frames and the GIF")
    every: int = option(10, "steps", "steps between frames (a multiple of synthesis.chunk)",
                        minimum=1)
    panels: int = option(3, "samples", "samples shown in each frame (at most synthesis.count)",
                         minimum=1)
    show_target: bool = option(True, "", "show the target beside the samples")
    show_loss: bool = option(True, "", "show a small loss curve below the maps")
    width: int = option(900, "px", "frame width (the height follows from the panels)",
                        minimum=200, maximum=4000)
    fps: float = option(12.0, "frames/s", "GIF frame rate", minimum=0.1, maximum=50.0)
    hold: float = option(3.0, "s", "how long the GIF holds its last frame", minimum=0.0)
    colors: int = option(88, "", "palette size of the frames and the GIF: the colour map in "
                         "colors - 24 levels, plus greys and the loss curve's colours (smaller "
                         "files with fewer)", minimum=32, maximum=256)
    cmap: str = option("inferno", "", "matplotlib colour map of the maps")
    nside: int = option(0, "", "HEALPix nside of the rendered maps (0: the smallest power of 2 "
                        ">= L/2 whose pixels are no larger than the panel's)", minimum=0)


@dataclasses.dataclass(frozen=True)
class Report:
    enabled: bool = option(True, "", "write report.png and metrics.json")
    nside: int = option(0, "", "HEALPix nside of the maps for the pixel PDF and Minkowski "
                        "functionals (0: smallest power of 2 >= L)", minimum=0)
    thresholds: int = option(31, "", "number of thresholds nu for the Minkowski functionals, "
                             "evenly spaced on [-3, 4] in units of the target's standard "
                             "deviation", minimum=3)
    bins: int = option(60, "", "bins of the pixel histogram", minimum=5)


@dataclasses.dataclass(frozen=True)
class Output:
    dir: str = option("", "", "output folder (empty: runs/<experiment.name> under the current "
                      "folder); --out overrides")


@dataclasses.dataclass(frozen=True)
class Checkpoint:
    every: int = option(0, "steps", "write the run's state to checkpoint.npz (for s2scat-synth "
                        "resume) at the first chunk end this many steps after the last write "
                        "(0: by time, checkpoint.seconds)", minimum=0)
    seconds: float = option(60.0, "s", "with every = 0: at the first chunk end this long after "
                            "the last write and 20x as long as it took (and always at the end "
                            "of the run)", minimum=0.0)


@dataclasses.dataclass(frozen=True)
class Experiment:
    experiment: ExperimentInfo = section(ExperimentInfo)
    target: Target = section(Target)
    statistics: Statistics = section(Statistics)
    synthesis: Synthesis = section(Synthesis)
    render: Render = section(Render)
    report: Report = section(Report)
    output: Output = section(Output)
    checkpoint: Checkpoint = section(Checkpoint)

    # -- convenience ------------------------------------------------------------------------
    def replace(self, **changes) -> "Experiment":
        """Copy with dotted-key changes, validated: ``exp.replace(**{"statistics.L": 32})``."""
        return apply_overrides(self, [f"{k}={_toml_value(v)}" for k, v in changes.items()])


# ------------------------------------------------------------------------------- loading
def _hints(cls):
    return typing.get_type_hints(cls)


def _type_name(tp) -> str:
    return {bool: "true or false", int: "an integer", float: "a number", str: "a string",
            tuple: "an array of strings", int | str: "\"all\" or an integer >= 1"}.get(
        tp, getattr(tp, "__name__", str(tp)))


def _check_value(key: str, value, tp, meta):
    if tp is bool:
        ok = isinstance(value, bool)
    elif tp is int:
        ok = isinstance(value, int) and not isinstance(value, bool)
    elif tp is float:
        ok = isinstance(value, (int, float)) and not isinstance(value, bool)
        if ok:
            value = float(value)
            ok = math.isfinite(value)
    elif tp is str:
        ok = isinstance(value, str)
    elif tp == int | str:  # "all" or a count
        ok = value == "all" or (isinstance(value, int) and not isinstance(value, bool)
                                and value >= 1)
    elif tp is tuple:
        ok = isinstance(value, (list, tuple)) and all(isinstance(v, str) for v in value)
        if ok:
            value = tuple(value)
    else:  # pragma: no cover - the schema only uses the types above
        ok = isinstance(value, tp)
    if not ok:
        raise ConfigError(f"{key} must be {_type_name(tp)}, got {value!r}")
    if meta.get("choices") is not None and value not in meta["choices"]:
        raise ConfigError(f"{key} must be one of {', '.join(map(repr, meta['choices']))}, "
                          f"got {value!r}")
    unit = f" {meta['unit']}" if meta.get("unit") else ""
    if meta.get("minimum") is not None and value < meta["minimum"]:
        raise ConfigError(f"{key} must be >= {meta['minimum']}{unit}, got {value!r}")
    if meta.get("maximum") is not None and value > meta["maximum"]:
        raise ConfigError(f"{key} must be <= {meta['maximum']}{unit}, got {value!r}")
    return value


def _build(cls, data, prefix: str, base=None):
    if not isinstance(data, dict):
        raise ConfigError(f"{prefix or 'the file'} must be a table, got {data!r}")
    names = {f.name: f for f in dataclasses.fields(cls)}
    for key in data:
        if key not in names:
            where = f"[{prefix}]" if prefix else "the top level"
            raise ConfigError(f"unknown key {(prefix + '.' if prefix else '') + key!r} "
                              f"(allowed in {where}: {', '.join(names)})")
    hints = _hints(cls)
    values = {}
    for name, f in names.items():
        key = f"{prefix}.{name}" if prefix else name
        current = getattr(base, name) if base is not None else None
        if f.metadata.get("section"):
            values[name] = _build(hints[name], data.get(name, {}), key, current)
        elif name in data:
            values[name] = _check_value(key, data[name], hints[name], f.metadata)
        elif current is not None:
            values[name] = current
    return cls(**values)


def from_dict(data: dict, base: Experiment | None = None, *, root: Path | None = None) -> Experiment:
    """Validate a nested dict (as read from TOML) over ``base`` (default: the defaults).

    ``root``: folder against which a relative ``target.path`` is resolved.
    """
    data = dict(data)
    target = data.get("target")
    if isinstance(target, dict):
        data["target"] = _resolve_paths(target, root)
    exp = _build(Experiment, data, "", base)
    validate(exp)
    return exp


def _resolve_paths(target: dict, root: Path | None) -> dict:
    """``path`` and ``mask`` against ``root``; ``paths``' globs expanded (sorted) there."""
    import glob

    def resolve(text):
        path = Path(text).expanduser()
        return path if path.is_absolute() or root is None else root / path

    target = dict(target)
    if isinstance(target.get("path"), str) and target["path"]:
        target["path"] = str(resolve(target["path"]))
    mask = target.get("mask")
    if isinstance(mask, str) and mask and mask not in ("band", "cap"):
        target["mask"] = str(resolve(mask))
    second = target.get("second")
    if isinstance(second, dict) and isinstance(second.get("path"), str) and second["path"]:
        target["second"] = {**second, "path": str(resolve(second["path"]))}
    paths = target.get("paths")
    if isinstance(paths, (list, tuple)) and all(isinstance(p, str) for p in paths):
        out = []
        for p in paths:
            full = str(resolve(p))
            if glob.has_magic(full):
                found = sorted(glob.glob(full))
                if not found:
                    raise ConfigError(f"target.paths: {p!r} matches no file")
                out += found
            else:
                out.append(full)
        target["paths"] = out
    return target


def load(path) -> Experiment:
    """Read and validate an experiment TOML file."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ConfigError(f"experiment file {str(path)!r} does not exist") from None
    except (IsADirectoryError, PermissionError, UnicodeDecodeError) as err:
        raise ConfigError(f"cannot read experiment file {str(path)!r}: {err}") from None
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as err:
        raise ConfigError(f"{path}: not valid TOML: {err}") from None
    try:
        return from_dict(data, root=path.resolve().parent)
    except ConfigError as err:
        raise ConfigError(f"{path}: {err}") from None


def _parse_override(text: str):
    if "=" not in text:
        raise ConfigError(f"--set expects key=value, got {text!r}")
    key, raw = (s.strip() for s in text.split("=", 1))
    if not key:
        raise ConfigError(f"--set expects key=value, got {text!r}")
    try:
        value = tomllib.loads(f"value = {raw}")["value"]
    except tomllib.TOMLDecodeError:
        value = raw
    return key, value


def apply_overrides(exp: Experiment, overrides) -> Experiment:
    """Apply ``["section.key=value", ...]`` to ``exp`` and validate the result."""
    data: dict = {}
    for text in overrides or ():
        key, value = _parse_override(text)
        parts = key.split(".")
        node = data
        for part in parts[:-1]:
            node = node.setdefault(part, {})
            if not isinstance(node, dict):
                raise ConfigError(f"--set {key}: {part!r} is a value, not a table")
        node[parts[-1]] = value
    if len(data) and any(not isinstance(v, dict) for v in data.values()):
        bad = next(k for k, v in data.items() if not isinstance(v, dict))
        names = [f.name for f in dataclasses.fields(Experiment)]
        raise ConfigError(f"unknown key {bad!r} (keys are dotted, section first: "
                          f"{', '.join(n + '.…' for n in names)})")
    return from_dict(data, base=exp)


def validate(exp: Experiment) -> None:
    """Checks that span several fields; raise :class:`ConfigError` naming the keys."""
    from s2scat_core import wavelets

    st, sy, rd = exp.statistics, exp.synthesis, exp.render
    J = wavelets.j_max(st.L)
    if st.J_min > J - 1:
        raise ConfigError(f"statistics.J_min must be <= {J - 1} (j_max(L={st.L}) - 1), got {st.J_min}")
    for j in range(st.J_min, J + 1):
        if wavelets.scale_directions(st.L, j, st.N) != st.N:
            raise ConfigError(f"statistics.N={st.N} is too large for scale j={j} at L={st.L}; "
                              f"raise statistics.J_min or lower statistics.N")
    if st.mode != "auto":
        from s2scat_core import transforms

        if st.mode not in transforms.BACKENDS:
            raise ConfigError(f"statistics.mode must be 'auto' or one of "
                              f"{', '.join(map(repr, sorted(transforms.BACKENDS)))}, got {st.mode!r}")
    if rd.every % sy.chunk:
        raise ConfigError(f"render.every ({rd.every}) must be a multiple of synthesis.chunk "
                          f"({sy.chunk}): frames are drawn between chunks")
    tg = exp.target
    if tg.source == "file" and not tg.path and not tg.paths:
        raise ConfigError("target.path must name a file (or target.paths several) when "
                          "target.source = 'file'")
    if tg.source != "file" and tg.bandlimit and tg.bandlimit < st.L:
        raise ConfigError(f"target.bandlimit must be 0 or >= statistics.L ({st.L}), got {tg.bandlimit}")
    if sy.optimizer == "adam" and sy.learning_rate <= 0:
        raise ConfigError("synthesis.learning_rate must be > 0 for optimizer = 'adam'")
    if tg.paths and tg.source != "file":
        raise ConfigError("target.paths needs target.source = 'file' (demo fields make an "
                          "ensemble with target.members)")
    if tg.paths and len(tg.paths) < 1:
        raise ConfigError("target.paths is empty")
    if tg.members > 1 and tg.source == "file":
        raise ConfigError("target.members is for demo fields; an ensemble of files is "
                          "target.paths")
    if sy.constrained and not tg.mask:
        raise ConfigError("synthesis.constrained = true needs target.mask (the observed pixels "
                          "to keep)")
    second = tg.second
    if second.source != "none":
        if len(tg.paths) > 1 or tg.members > 1:
            raise ConfigError("target.second pairs with one target field, not an ensemble "
                              "(target.paths / target.members)")
        if sy.constrained:
            raise ConfigError("synthesis.constrained completes one field, not a pair "
                              "(target.second)")
        if second.source == "file" and not second.path:
            raise ConfigError("target.second.path must name a file when target.second.source "
                              "= 'file'")
    if sy.constrained and (len(tg.paths) > 1 or tg.members > 1):
        raise ConfigError("synthesis.constrained completes one target map, not an ensemble "
                          "(target.paths / target.members)")


# ------------------------------------------------------------------------------- writing
def to_dict(obj) -> dict:
    """Nested plain dict of an :class:`Experiment` (or a section)."""
    return dataclasses.asdict(obj)


def _toml_value(value) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float)):
        return repr(value)
    if isinstance(value, str):
        escaped = value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")
        return f'"{escaped}"'
    if isinstance(value, (tuple, list)):
        return "[" + ", ".join(_toml_value(v) for v in value) + "]"
    raise ConfigError(f"cannot write {value!r} to TOML")


def to_toml(exp: Experiment, *, comments: bool = True) -> str:
    """The experiment as TOML (every key, with its unit and description as comments)."""
    lines: list[str] = []

    def emit(obj, prefix):
        scalars = [f for f in dataclasses.fields(obj) if not f.metadata.get("section")]
        subs = [f for f in dataclasses.fields(obj) if f.metadata.get("section")]
        if prefix:
            lines.append(f"\n[{prefix}]")
        for f in scalars:
            line = f"{f.name} = {_toml_value(getattr(obj, f.name))}"
            if comments:
                unit = f"[{f.metadata['unit']}] " if f.metadata.get("unit") else ""
                line = f"{line:<40} # {unit}{f.metadata.get('doc', '')}"
            lines.append(line)
        for f in subs:
            emit(getattr(obj, f.name), f"{prefix}.{f.name}" if prefix else f.name)

    emit(exp, "")
    return "\n".join(lines).lstrip("\n") + "\n"


def schema_rows(cls=Experiment, prefix: str = ""):
    """``(key, type, default, unit, description)`` for every field, in file order."""
    hints = _hints(cls)
    default = cls()
    for f in dataclasses.fields(cls):
        key = f"{prefix}.{f.name}" if prefix else f.name
        if f.metadata.get("section"):
            yield from schema_rows(hints[f.name], key)
        else:
            doc = f.metadata.get("doc", "")
            if f.metadata.get("choices"):
                doc += f" (one of {', '.join(map(repr, f.metadata['choices']))})"
            tp = "int or str" if hints[f.name] == int | str else hints[f.name].__name__
            yield key, tp, getattr(default, f.name), f.metadata.get("unit", ""), doc


# ------------------------------------------------------------------------------- lookup
def experiments_dir() -> Path:
    """The ``experiments/`` folder shipped beside the package (source checkout)."""
    return Path(__file__).resolve().parent.parent / "experiments"


def find_experiment(name_or_path: str | None) -> Path | None:
    """A path to an experiment file: an existing path, or a shipped experiment's name.

    ``None`` (no CONFIG on the command line) is the default experiment ``quickstart``; it
    returns ``None`` when the file is not shipped, and the built-in defaults are used.
    """
    if name_or_path is None:
        path = experiments_dir() / "quickstart.toml"
        return path if path.is_file() else None
    path = Path(name_or_path)
    if path.exists() or path.suffix == ".toml" or "/" in name_or_path:
        return path
    shipped = experiments_dir() / f"{name_or_path}.toml"
    if shipped.is_file():
        return shipped
    names = sorted(p.stem for p in experiments_dir().glob("*.toml"))
    raise ConfigError(f"no experiment file {name_or_path!r} and no shipped experiment of that "
                      f"name (shipped: {', '.join(names) or 'none'})")
