r"""Compression: the scattering covariances of many fields as rows of one table.

``encode(paths, L=..., N=...)`` streams the files (:func:`synthesis.targets.read_coefficients`)
in chunks of ``batch``: each chunk's coefficients ``(batch, L, 2L-1)`` are read, turned into
rows by one compiled function whose batch is sharded over the devices
(:meth:`synthesis.devices.Devices.batch_map`: each device computes its own fields' rows; the
last chunk is padded to the same shape, so it compiles once), and dropped. Only one chunk of
fields is held at a time; the table ``(n, D)`` (the output) is filled row by row. Each row is
``[mean, var, S1..., S2..., S3..., S4...]`` (S2SCAT 0.0.3's order and flattening); the label
arrays say what each column is. With a mask file every input's statistics are taken over its
observed sky (``op.scatter(..., mask=)``).

Normalisation (``norm``): ``"self"`` (default) divides each field's S1-S4 by its own power per
scale and direction (``op.norm`` of that field, S2SCAT's convention: S2 becomes 1 and the rest
measure shape rather than amplitude); ``"first"`` uses the first file's for every row; ``"none"``
leaves them raw. ``mean`` and ``var`` are never normalised.
"""

from __future__ import annotations

import functools
import time
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
import s2scat_core
from s2scat_core._checks import check_scales
from s2scat_core.labels import STATISTICS

from . import devices as devices_mod
from .engine import resolve_mode
from .io import write_npz
from .progress import ProgressBar
from .targets import read_coefficients, standardise as _standardise

NORMS = ("self", "first", "none")
LABEL_FIELDS = ("j1", "j2", "j3", "k1", "k2", "k3")


def column_labels(op) -> dict[str, np.ndarray]:
    """``statistic (D,)`` names, ``column (D,)`` readable names and ``j1..k3 (D,)`` integer
    labels (``-1`` where a statistic has no such index; S1/S2's ``(j, k)`` are ``j1, k1``)."""
    names, columns = [], []
    ints = {f: [] for f in LABEL_FIELDS}
    for stat, lab in op.labels().items():
        fields = [f for f in (lab.dtype.names or ()) if f != "entry"]
        for row in lab:
            names.append(stat)
            given = {("j1" if f == "j" else "k1" if f == "k" else f): int(row[f]) for f in fields}
            columns.append(stat + ("[" + ",".join(f"{f}={row[f]}" for f in fields) + "]"
                                   if fields else ""))
            for f in LABEL_FIELDS:
                ints[f].append(given.get(f, -1))
    out = {"statistic": np.array(names), "column": np.array(columns)}
    out.update({f: np.array(v, dtype=np.int32) for f, v in ints.items()})
    return out


def _read_chunk(paths, L, mask_map, format, field, standardise) -> np.ndarray:
    """``(len(paths), L, 2L-1)``: the coefficients of one chunk of inputs (seen through
    ``mask_map``, a HEALPix mask, when given)."""
    if mask_map is None:
        flms = np.stack([read_coefficients(p, L, format=format, field=field, name="input")
                         for p in paths])
        return _standardise(flms) if standardise else flms
    import healpy as hp

    from .targets import files, masked_coefficients, masks, standardise_observed

    flms = []
    for p in paths:
        raw = files.read_healpix(p, format=format, field=field, name="input")
        if raw is None:
            raise ValueError(f"input: {p}: --mask needs HEALPix maps (a coefficient file or "
                             f"MW/GL grid cannot be masked pixel by pixel)")
        nside = hp.npix2nside(raw.size)
        flm, weight = masked_coefficients(raw, masks.to_nside(mask_map, nside), L,
                                          f"input: {p}", key="--mask")
        flms.append(standardise_observed(flm, weight) if standardise else flm)
    return np.stack(flms)


def _row(flm, op, scale, prepared, norm: str):
    """One field's row ``(D,)``: its statistics, normalised by ``scale`` or its own power."""
    if norm == "self":
        scale = op.norm(flm, mask=prepared)
    cov = op.scatter(flm, norm=None if norm == "none" else scale, mask=prepared)
    return jnp.concatenate([jnp.ravel(c) for c in cov])


@functools.lru_cache(maxsize=8)
def _rows_function(devices: devices_mod.Devices, norm: str):
    """The jitted ``(op, flms (B, L, 2L-1), scale, prepared) -> rows (B, D)``, ``B`` sharded
    over ``devices``."""
    row = functools.partial(_row, norm=norm)
    return jax.jit(lambda op, flms, scale, prepared: devices.batch_map(
        row, flms, op, scale, prepared))


def encode(paths, *, L: int = 64, N: int = 3, J_min: int = 0, isotropic: bool = False,
           delta_j: int | None = None, same_scale: bool = False, format: str = "auto",
           field: int = 0, norm: str = "self", mode: str = "auto",
           standardise: bool = False, mask=None, apodisation: float | None = None,
           batch: int = 64, devices="all", progress: bool = False) -> dict[str, np.ndarray]:
    """Covariance table of the fields in ``paths``: ``covariances (n, D)`` plus labels.

    Args:
        paths: map or coefficient files (see :mod:`synthesis.targets.files`).
        L, N, J_min, isotropic, delta_j, same_scale, mode: the statistics
            (:func:`s2scat_core.build`; S2SCAT 0.0.3's by default).
        format, field: how to read the files.
        norm: ``"self"``, ``"first"`` or ``"none"`` (module doc).
        standardise: zero mean and unit variance first (as synthesis targets; over the
            observed sky with ``mask``).
        mask: a mask file (HEALPix FITS or 1D ``.npy``, any nside, values in ``[0, 1]``): the
            statistics of every input over its observed sky (``op.scatter(..., mask=)``,
            eroded per scale by ``apodisation``); the inputs must be HEALPix maps, whose
            unseen pixels must be masked.
        batch: files read and encoded together (rounded up to a multiple of the devices).
        devices: ``"all"`` or ``N`` devices to shard each chunk over (:mod:`synthesis.devices`).
        progress: a progress bar on stderr.
    """
    check_scales(L, N, J_min, delta_j)  # before reading any file
    paths = [str(p) for p in paths]
    if not paths:
        raise ValueError("encode needs at least one input file")
    if norm not in NORMS:
        raise ValueError(f"norm must be one of {', '.join(NORMS)}, got {norm!r}")
    if isinstance(batch, bool) or not isinstance(batch, int) or batch < 1:
        raise ValueError(f"--batch must be an integer >= 1, got {batch!r}")
    missing = next((p for p in paths if not Path(p).is_file()), None)
    if missing is not None:  # before hours of encoding
        raise ValueError(f"input: file {missing!r} does not exist")
    mask_map = grid = None
    if mask is not None:
        from .targets import masks

        mask_map = masks.read(mask, name="--mask")
        grid = masks.on_gl_grid(mask_map, L)
    op = s2scat_core.build(L, N, J_min, mode=resolve_mode(mode, L), isotropic=isotropic,
                           delta_j=delta_j, same_scale=same_scale)
    mesh = devices_mod.resolve(devices, name="--devices",
                               callbacks=op.config.mode in devices_mod.CALLBACK_MODES)
    prepared = None
    if grid is not None:
        try:
            prepared = op.mask(grid, apodisation)
        except ValueError as err:
            raise ValueError(f"--mask: {err}") from None
    size = mesh.padded(min(batch, len(paths)))
    rows_of = _rows_function(mesh, norm)
    shared = mesh.replicate((op, prepared))
    table = scale = None
    bar = ProgressBar(len(paths), label="encode ", unit="maps") if progress else None
    began = time.perf_counter()
    try:
        for lo in range(0, len(paths), size):
            flms = _read_chunk(paths[lo:lo + size], L, mask_map, format, field, standardise)
            n = len(flms)
            if scale is None:  # "first": the first file's; else unused (a placeholder)
                scale = mesh.replicate(op.norm(flms[0], mask=prepared))
            if n < size:  # the last chunk: padded with copies (same shape: no recompilation)
                flms = np.concatenate([flms, flms[np.arange(size - n) % n]])
            rows = devices_mod.to_host(rows_of(shared[0], mesh.put(flms) if mesh.mesh else flms,
                                               scale, shared[1]))[:n]
            if table is None:
                table = np.empty((len(paths), rows.shape[1]), rows.dtype)
            table[lo:lo + n] = rows
            del flms
            if bar:
                done = lo + n
                bar.update(done, rate=done / max(time.perf_counter() - began, 1e-9),
                           final=done == len(paths))
    finally:
        if bar:
            bar.close()
    out = {"covariances": table, "files": np.array(paths), "L": L, "N": N, "J_min": J_min,
           "isotropic": isotropic, "same_scale": same_scale, "norm": norm, "mode": op.config.mode,
           "statistics": np.array(STATISTICS), "mask": "" if mask is None else str(mask),
           "devices": mesh.count}
    out.update(column_labels(op))
    return out


def write(table: dict, path) -> Path:
    """Write :func:`encode`'s output as an ``.npz`` (atomically)."""
    return write_npz(path, **table)
