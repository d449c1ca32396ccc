r"""The public operator: ``build(L, N, ...)`` returns a :class:`Scattering` built once.

``op.scatter(flm)`` computes mean, var, S1, S2, S3, S4 (S2SCAT 0.0.3's mean, var, S1, P00,
C01, C11) as flat arrays, in S2SCAT's order and flattening; ``op.norm(flm)`` the
normalisation (S2 per scale and direction, shape ``(J - J_min + 1, 2N-1)``).

The operator is a JAX pytree: its kernels and filters are leaves, its configuration is
static. ``op.scatter`` is compiled once per input shape; a new ``flm`` of the same shape does
not re-trace. Inside your own ``jax.jit``, pass ``op`` as an argument
(``jax.jit(loss)(op, flm)``) so the kernels are inputs of the compiled program rather than
constants folded into it.
"""

from __future__ import annotations

import dataclasses
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from . import covariances as cov
from . import labels as _labels
from . import masks as _masks
from . import transforms, wavelets
from ._checks import check_choice, check_scales
from ._malloc import keep_freed_memory
from .masks import MaskWeights
from .transforms import directional
from .transforms.base import gl_thetas, gl_weights, layers_from_maps, second_layers


class Covariances(NamedTuple):
    """Flat statistics of one field (or a batch: a leading batch axis on every entry).

    ``mean``, ``var``: scalars; ``S1``, ``S2``: ``(nJ * (2N-1),)``; ``S3``, ``S4``: see
    :func:`s2scat_core.labels.counts` and :func:`s2scat_core.labels.labels` for sizes and
    what each entry is.
    """

    mean: jax.Array
    var: jax.Array
    S1: jax.Array
    S2: jax.Array
    S3: jax.Array
    S4: jax.Array


class CrossCovariances(NamedTuple):
    """Cross statistics of two real fields ``(f, g)`` (one pair, or a batch: a leading axis).

    ``var``: ``<f g> - <f><g>``; ``S2 (nJ * (2N-1),)``: ``<W_{j,k} f W_{j,k} g>``; ``S3_fg``:
    ``Cov[W_{j1,k1} f, W_{j1,k1} |W_{j2,k2} g|]`` and ``S3_gf`` the same with ``f`` and ``g``
    swapped, each ordered as the auto ``S3``; ``S4``:
    ``Cov[W_{j1,k1} |W_{j2,k2} f|, W_{j1,k1} |W_{j3,k3} g|]``, ordered as the auto ``S4``
    (``(j2, k2)`` from ``f``, ``(j3, k3)`` from ``g``). With ``f = g`` these are the auto
    ``var``, ``S2``, ``S3``, ``S3``, ``S4``.
    """

    var: jax.Array
    S2: jax.Array
    S3_fg: jax.Array
    S3_gf: jax.Array
    S4: jax.Array


@dataclasses.dataclass(frozen=True)
class Config:
    """Static configuration of an operator (hashable: it is the pytree's static part)."""

    L: int
    N: int
    J_min: int
    reality: bool
    mode: str
    isotropic: bool
    delta_j: int | None
    dtype: str
    same_scale: bool = False

    @property
    def J(self) -> int:
        return wavelets.j_max(self.L)

    @property
    def scales(self) -> tuple[int, ...]:
        return tuple(range(self.J_min, self.J + 1))

    def bandlimit(self, j: int) -> int:
        return wavelets.scale_bandlimit(self.L, j)

    def partners(self, j1: int) -> tuple[int, ...]:
        """Scales ``j2`` paired with ``j1`` in S3/S4 (:func:`s2scat_core.labels.partners`)."""
        return tuple(_labels.partners(j1, self.J, self.delta_j, self.same_scale))

    def modulus_bandlimit(self, j2: int) -> int:
        """Band-limit to which ``|W_j2|`` is read: ``l = 0`` for S1, ``l, m < L_j1`` as the input
        of the second layer at each ``j1`` paired with ``j2``."""
        return max([1] + [self.bandlimit(j1) for j1 in self.scales if j2 in self.partners(j1)])


@jax.tree_util.register_pytree_node_class
class Scattering:
    """Directional scattering covariance operator; make one with :func:`build`."""

    def __init__(self, config: Config, backend, weights: dict, quadrature: dict):
        self.config = config
        self.backend = backend
        self.weights = weights
        self.quadrature = quadrature

    def tree_flatten(self):
        return (self.backend, self.weights, self.quadrature), self.config

    @classmethod
    def tree_unflatten(cls, config, children):
        return cls(config, *children)

    def __repr__(self):
        c = self.config
        return (f"Scattering(L={c.L}, N={c.N}, J_min={c.J_min}, reality={c.reality}, "
                f"mode={c.mode!r}, isotropic={c.isotropic}, delta_j={c.delta_j}, dtype={c.dtype}"
                + (", same_scale=True)" if c.same_scale else ")"))

    # ---------------------------------------------------------------- public methods
    @property
    def counts(self) -> dict[str, int]:
        """Number of entries of each flat statistic."""
        c = self.config
        return _labels.counts(c.L, c.N, c.J_min, delta_j=c.delta_j, isotropic=c.isotropic,
                              same_scale=c.same_scale)

    def labels(self) -> dict[str, np.ndarray]:
        """What each entry of each flat statistic is (see :func:`s2scat_core.labels.labels`)."""
        c = self.config
        return _labels.labels(c.L, c.N, c.J_min, delta_j=c.delta_j, isotropic=c.isotropic,
                              same_scale=c.same_scale)

    def scatter(self, flm, norm=None, mask=None) -> Covariances:
        """Scattering covariances of ``flm``.

        Args:
            flm: ``(..., L, L)`` (``m >= 0`` half, ``reality=True`` only) or ``(..., L, 2L-1)``
                harmonic coefficients in s2fft's layout; leading axes are a batch. With
                ``reality=True`` a full array is read through its ``m >= 0`` half (the field is
                taken to be real).
            norm: ``None``, or the output of :meth:`norm` for a reference field, shape
                ``(nJ, 2N-1)`` (shared by the batch) or ``(..., nJ, 2N-1)`` (one per member).
            mask: ``None`` (full sky), a weight map ``(L, 2L-1)`` in ``[0, 1]`` on the
                operator's GL grid (:meth:`grid`), or its :meth:`mask` (prepared once: pass
                that inside ``jit`` and in loops). Every sphere average becomes a weighted
                average over the observed sky, eroded per scale (:mod:`s2scat_core.masks`);
                shared by the batch. The field's values under the mask still enter the
                wavelet transform (zero-fill them, say); the erosion keeps them out of the
                averages. A full mask of ones gives the unmasked numbers (1e-14).

        Returns:
            :class:`Covariances` of flat arrays, with the batch axes of ``flm`` in front.
        """
        flm, batch = self._check_flm(flm)
        if norm is not None:
            norm = self._check_norm(norm, batch)
        return _scatter(self, flm, norm, self._check_mask(mask))

    def norm(self, flm, mask=None) -> jax.Array:
        """Normalisation from a (target) field: ``S2`` per scale and direction, ``(..., nJ, 2N-1)``
        (over the observed sky with ``mask``, as in :meth:`scatter`)."""
        flm, _ = self._check_flm(flm)
        return _norm(self, flm, self._check_mask(mask))

    def cross(self, flm, glm, norm=None, mask=None) -> CrossCovariances:
        """Cross scattering covariances of two real fields (:class:`CrossCovariances`), FOSCAT's
        cross statistics in S2SCAT's definitions: S3 and S4 with one layer from each field.

        Args:
            flm, glm: coefficients of the two fields, the same shapes as :meth:`scatter` takes
                (a batch pairs member with member).
            norm: ``None``, or ``(norm_f, norm_g)``, each field's :meth:`norm` (each direction
                axis is divided by its own field's power, see
                :func:`s2scat_core.covariances.normalise_cross`).
            mask: as in :meth:`scatter`, shared by both fields.

        Computed from maps on every backend (as the masked statistics are); ``reality=True``.
        """
        if not self.config.reality:
            raise ValueError("cross statistics need an operator built with reality=True")
        f, batch = self._check_flm(flm)
        g, batch_g = self._check_flm(glm)
        if batch_g != batch or f.shape != g.shape:
            raise ValueError(f"flm and glm must have the same shape, got {tuple(f.shape)} and "
                             f"{tuple(g.shape)}")
        norm_f = norm_g = None
        if norm is not None:
            if not isinstance(norm, (tuple, list)) or len(norm) != 2:
                raise ValueError("norm must be None or a pair (op.norm(f), op.norm(g))")
            norm_f, norm_g = (self._check_norm(n, batch) for n in norm)
            if norm_f.shape != norm_g.shape:
                raise ValueError(f"the two norms must have the same shape, got {norm_f.shape} "
                                 f"and {norm_g.shape}")
        return _cross(self, f, g, norm_f, norm_g, self._check_mask(mask))

    @property
    def cross_counts(self) -> dict[str, int]:
        """Number of entries of each flat cross statistic (:meth:`cross`)."""
        n = self.counts
        return {"var": 1, "S2": n["S2"], "S3_fg": n["S3"], "S3_gf": n["S3"], "S4": n["S4"]}

    def mask(self, w, apodisation: float | None = None) -> MaskWeights:
        """The pixel weights of a mask ``w (L, 2L-1)`` (values in ``[0, 1]``, 1 observed, on the
        GL grid of :meth:`grid`) for :meth:`scatter` and :meth:`norm`: the mask itself for the
        mean and variance, and at each scale ``j`` the mask eroded and apodised by a Gaussian
        of ``sigma_j = apodisation * pi / 2^j`` (default 1; see :mod:`s2scat_core.masks`).
        Computed once, in NumPy; ``ValueError`` for a bad mask, naming the problem."""
        c = self.config
        return _masks.scale_weights(w, c.L, c.scales, [c.bandlimit(j) for j in c.scales],
                                    apodisation)

    def to_map(self, flm) -> jax.Array:
        """The field on the operator's grid (:meth:`grid`): ``(..., L, L)`` or ``(..., L, 2L-1)``
        coefficients -> ``(..., L, 2L-1)`` map, real for ``reality=True`` (the backend's
        synthesis; differentiable, jittable)."""
        flm, _ = self._check_flm(flm)
        return _to_map(self, flm)

    def from_map(self, f) -> jax.Array:
        """Coefficients of a real map on the operator's grid, by its GL quadrature:
        ``(..., L, 2L-1)`` real -> the ``m >= 0`` half ``(..., L, L)`` (exact for band-limited
        maps, the projection onto ``l < L`` for others). Real fields only; differentiable."""
        c = self.config
        if not c.reality:
            raise ValueError("from_map needs an operator built with reality=True")
        f = jnp.asarray(f)
        if f.ndim < 2 or tuple(f.shape[-2:]) != (c.L, 2 * c.L - 1) or jnp.iscomplexobj(f):
            raise ValueError(f"f must be a real map of shape (..., {c.L}, {2 * c.L - 1}) on the "
                             f"operator's grid, got {tuple(f.shape)} {f.dtype}")
        return _from_map(self, f.astype(jnp.float32 if c.dtype == "float32" else jnp.float64))

    def grid(self) -> tuple[np.ndarray, np.ndarray]:
        """The operator's sampling grid, on which masks live: GL colatitudes ``theta (L,)`` and
        longitudes ``phi (2L-1,)``, radians (s2fft's ``"gl"`` sampling); a map is
        ``f[t, p] = f(theta_t, phi_p)``, shape ``(L, 2L-1)``."""
        L = self.config.L
        return gl_thetas(L), 2 * np.pi * np.arange(2 * L - 1) / (2 * L - 1)

    # ---------------------------------------------------------------- internals
    @property
    def _complex(self):
        return jnp.complex64 if self.config.dtype == "float32" else jnp.complex128

    def _check_flm(self, flm):
        c = self.config
        if isinstance(flm, (list, tuple)):
            flm = np.asarray(flm)
        if not hasattr(flm, "shape") or not hasattr(flm, "dtype"):
            raise ValueError(f"flm must be an array of harmonic coefficients, got {type(flm).__name__}")
        shapes = [(c.L, 2 * c.L - 1)] + ([(c.L, c.L)] if c.reality else [])
        if flm.ndim < 2 or tuple(flm.shape[-2:]) not in shapes:
            expected = " or ".join(f"(..., {a}, {b})" for a, b in shapes)
            raise ValueError(f"flm must have shape {expected} for L={c.L} "
                             f"(reality={c.reality}), got {tuple(flm.shape)}")
        if not isinstance(flm, jax.core.Tracer):
            values = np.asarray(flm)
            if not np.issubdtype(values.dtype, np.number):
                raise ValueError(f"flm must be numeric, got dtype {values.dtype}")
            if not np.all(np.isfinite(values)):
                bad = int(np.size(values) - np.count_nonzero(np.isfinite(values)))
                raise ValueError(f"flm must be finite, got {bad} non-finite coefficient(s)")
        flm = jnp.asarray(flm).astype(self._complex)
        return flm, tuple(flm.shape[:-2])

    def _check_mask(self, mask):
        if mask is None:
            return None
        if not isinstance(mask, MaskWeights):
            return self.mask(mask)
        c = self.config
        shapes = [(c.L, 2 * c.L - 1)] + [(c.bandlimit(j), 2 * c.bandlimit(j) - 1) for j in c.scales]
        got = [tuple(np.shape(mask.field))] + [tuple(np.shape(w)) for w in mask.scales]
        if got != shapes:
            raise ValueError(f"mask weights were prepared for another operator: expected arrays "
                             f"of shapes {shapes}, got {got} (use this operator's op.mask(w))")
        real = jnp.float32 if c.dtype == "float32" else jnp.float64
        return jax.tree_util.tree_map(lambda a: jnp.asarray(a, real), mask)

    def _check_norm(self, norm, batch):
        c = self.config
        norm = jnp.asarray(norm)
        core = (len(c.scales), 2 * c.N - 1)
        if tuple(norm.shape[-2:]) != core or tuple(norm.shape[:-2]) not in ((), batch):
            expected = f"{core}" + (f" or {batch + core}" if batch else "")
            raise ValueError(f"norm must have shape {expected} (from op.norm), got {tuple(norm.shape)}")
        return norm.astype(jnp.float32 if c.dtype == "float32" else jnp.float64)


def build(L: int, N: int, J_min: int = 0, *, reality: bool = True, mode: str = "precompute",
          isotropic: bool = False, delta_j: int | None = None, same_scale: bool = False,
          dtype: str = "float64") -> Scattering:
    """Build a scattering covariance operator (filters, kernels, quadrature), once.

    Args:
        L: harmonic band-limit (``l < L``), ``L >= 2``.
        N: azimuthal band-limit of the wavelets; ``2N-1`` directions, ``N >= 1``.
        J_min: first wavelet scale, ``0 <= J_min < j_max(L) = ceil(log2 L)``.
        reality: the fields are real (``m >= 0`` half accepted; faster).
        mode: transform backend, one of ``s2scat_core.transforms.BACKENDS``
            (``"precompute"``: tabulated kernels, fastest, ``O(N L^3)`` memory;
            ``"recursive"``: on-the-fly recursion, ``O(N L^2)`` memory; ``"ducc"``: ducc0's CPU
            transforms, ``O(N L^2)`` memory, the fastest on a CPU from L = 64 (2.5x precompute
            at L = 128) and the way beyond it, to L = 1024).
        isotropic: sum S3 and S4 over directions.
        delta_j: pair scales ``j1 < j2 <= j1 + delta_j`` only (``None``: all pairs), ``>= 1``.
        same_scale: also pair each scale with itself in S3 and S4 (``j2 = j1``,
            ``Cov[W_j f, W_j |W_j f|]``...), which S2SCAT 0.0.3 leaves out. With real wavelet
            coefficients these terms see the asymmetry of positive and negative excursions at
            each scale (they change sign with ``f``): syntheses of skewed fields reproduce
            the pixel skewness better. Costs one more set of ``2N-1`` moduli in the second
            layer at every scale ``j1`` (the finest scales cost most): about 1.3x the time of
            a synthesis step at L = 64, 2x at L = 128 and 256 (``ducc``).
        dtype: ``"float64"`` (default) or ``"float32"``.
    """
    L, N, J_min, J, delta_j = check_scales(L, N, J_min, delta_j)
    for name, value in (("reality", reality), ("isotropic", isotropic), ("same_scale", same_scale)):
        if not isinstance(value, (bool, np.bool_)):
            raise ValueError(f"{name} must be True or False, got {value!r}")
    backend_cls = transforms.get(mode)
    check_choice("dtype", dtype, {"float64", "float32"})
    for j in range(J_min, J + 1):
        if wavelets.scale_directions(L, j, N) != N:
            Lj = wavelets.scale_bandlimit(L, j)
            raise ValueError(f"N={N} is too large for scale j={j} (band-limit {Lj}): the "
                             f"coarsest scale carries at most N={Lj + 1}; "
                             f"raise J_min or lower N")
    config = Config(L=L, N=N, J_min=J_min, reality=bool(reality), mode=mode,
                    isotropic=bool(isotropic), delta_j=delta_j, dtype=dtype,
                    same_scale=bool(same_scale))
    keep_freed_memory()

    real_dtype = np.float32 if dtype == "float32" else np.float64
    ns = wavelets.directions(N)
    # Real fields synthesise n > 0 only (n = 0 goes through the real spin-0 path).
    spins = {-int(n) for n in ns if n > 0 or not reality}
    bandlimits = {config.bandlimit(j) for j in config.scales}
    backend = backend_cls(bandlimits, spins, real_dtype)
    psi, _ = wavelets.filters(L, N)
    cplx = np.complex64 if dtype == "float32" else np.complex128
    weights = {str(j): jnp.asarray(directional.harmonic_weights(psi, j, N, config.bandlimit(j)), cplx)
               for j in config.scales}
    quadrature = {str(j): jnp.asarray(gl_weights(config.bandlimit(j)), real_dtype)
                  for j in config.scales}
    return Scattering(config, backend, weights, quadrature)


# -------------------------------------------------------------------- the computation
def _as_input(op: Scattering, flm):
    """The coefficients the first layer reads: the ``m >= 0`` half for real fields."""
    c = op.config
    if c.reality and flm.shape[-1] != c.L:
        return flm[..., c.L - 1:]
    return flm


def _statistics(op: Scattering, flm):
    """S1, S2, S3 and S4 of one field, lists over the scales (S3, S4: over the scales ``j1``
    that have partners), from both layers at every scale (``SphericalTransforms.two_layers``;
    :func:`.covariances.scale_statistics`)."""
    c = op.config
    hs = [op.weights[str(j)] for j in c.scales]
    bandlimits = [c.modulus_bandlimit(j) for j in c.scales]
    index = {j: i for i, j in enumerate(c.scales)}
    pairs = [(index[j1], tuple(index[j2] for j2 in c.partners(j1)))
             for j1 in c.scales if c.partners(j1)]
    if c.reality:
        layers, means = directional.two_layers(op.backend, flm, hs, c.N, bandlimits, pairs)
    else:
        W = directional.analysis_scales(op.backend, [flm] * len(hs), hs, c.N, real=False)
        layers, means = layers_from_maps(op.backend, W, hs, c.N, bandlimits, pairs)
    stats = [cov.scale_statistics(layer, len(c.partners(j))) for layer, j in zip(layers, c.scales)]
    if c.reality:
        S2 = [s[0] for s in stats]
    else:  # |W|^2 of complex maps; the layers hold their real part
        S2 = [cov.s2(w, op.quadrature[str(j)]) for w, j in zip(W, c.scales)]
    S1 = [cov.s1(m) for m in means]
    S3 = [s[1] for s in stats if s[1] is not None]
    S4 = [s[2] for s in stats if s[2] is not None]
    return S1, S2, S3, S4


def _masked_first_layer(op: Scattering, flm, omegas):
    """The first layer's maps ``W`` at every scale and their weighted ``S1``, ``S2``."""
    c = op.config
    hs = [op.weights[str(j)] for j in c.scales]
    W = directional.analysis_scales(op.backend, [flm] * len(hs), hs, c.N, real=c.reality)
    moduli = [jnp.abs(w) for w in W]
    S1 = [cov.weighted_mean(m, om) for m, om in zip(moduli, omegas)]
    S2 = [cov.weighted_mean(m * m, om) for m, om in zip(moduli, omegas)]
    return W, moduli, S1, S2


def _map_layers(op: Scattering, flm):
    """Both layers as maps, every backend: ``(W, moduli, second, pairs)``, ``W[i]`` and
    ``moduli[i] (K, Li, 2Li-1)`` the first layer and its modulus at scale ``i``, ``second[i1]
    (A, K2, K1, L1, 2L1-1)`` the second layer at each scale ``i1`` of ``pairs``."""
    c = op.config
    hs = [op.weights[str(j)] for j in c.scales]
    W = directional.analysis_scales(op.backend, [flm] * len(hs), hs, c.N, real=c.reality)
    moduli = [jnp.abs(w) for w in W]
    index = {j: i for i, j in enumerate(c.scales)}
    pairs = [(index[j1], tuple(index[j2] for j2 in c.partners(j1)))
             for j1 in c.scales if c.partners(j1)]
    read = sorted({i2 for _, partners in pairs for i2 in partners})
    halves = op.backend.analysis_real_scales([moduli[i] for i in read],
                                             [c.modulus_bandlimit(c.scales[i]) for i in read])
    second = second_layers(op.backend, dict(zip(read, halves)), hs, c.N, pairs, fourier=False)
    return W, moduli, second, pairs


def _masked_statistics(op: Scattering, flm, omegas):
    """:func:`_statistics` with weighted sphere averages, from maps (every backend's
    ``wavelets_real_scales`` and ``analysis_real_scales``): ``omegas[i]`` the pixel weights of
    scale ``i`` (:class:`.masks.MaskWeights`)."""
    W, moduli, second, pairs = _map_layers(op, flm)
    S1 = [cov.weighted_mean(m, om) for m, om in zip(moduli, omegas)]
    S2 = [cov.weighted_mean(m * m, om) for m, om in zip(moduli, omegas)]
    S3, S4 = [], []
    for i1, partners in pairs:
        s3, s4 = cov.weighted_s3_s4(W[i1].real, second[i1], omegas[i1], len(partners))
        S3.append(s3)
        S4.append(s4)
    return S1, S2, S3, S4


def _full_sky(op: Scattering) -> MaskWeights:
    """The weights of a full mask without computing it: ``Q_t`` on every grid."""
    c = op.config
    field = jnp.broadcast_to(jnp.asarray(gl_weights(c.L))[:, None], (c.L, 2 * c.L - 1))
    scales = tuple(jnp.broadcast_to(op.quadrature[str(j)][:, None],
                                    (c.bandlimit(j), 2 * c.bandlimit(j) - 1)) for j in c.scales)
    return MaskWeights(field.astype(scales[0].dtype), scales)


def _cross_single(op: Scattering, f, g, norm_f, norm_g, mask):
    c = op.config
    mask = _full_sky(op) if mask is None else mask
    f, g = _as_input(op, f), _as_input(op, g)
    map_f, map_g = _field_map(op, f), _field_map(op, g)
    var = (cov.weighted_mean(map_f * map_g, mask.field)
           - cov.weighted_mean(map_f, mask.field) * cov.weighted_mean(map_g, mask.field))
    Wf, _, Nf, pairs = _map_layers(op, f)
    Wg, _, Ng, _ = _map_layers(op, g)
    S2 = [cov.weighted_mean(a * b, om) for a, b, om in zip(Wf, Wg, mask.scales)]
    S3_fg = [cov.weighted_s3(Wf[i], Ng[i], mask.scales[i]) for i, _ in pairs]
    S3_gf = [cov.weighted_s3(Wg[i], Nf[i], mask.scales[i]) for i, _ in pairs]
    S4 = [cov.weighted_s4(Nf[i], Ng[i], mask.scales[i], len(p)) for i, p in pairs]
    if norm_f is not None:
        S2, S3_fg, S3_gf, S4 = cov.normalise_cross(S2, S3_fg, S3_gf, S4, norm_f, norm_g)
    if c.isotropic:
        S3_fg, S4 = cov.isotropic(S3_fg, S4)
        S3_gf = [s.sum(axis=(1, 2)) for s in S3_gf]
    flat = [jnp.concatenate([jnp.ravel(s) for s in stat]) for stat in (S2, S3_fg, S3_gf, S4)]
    return CrossCovariances(var, *flat)


@jax.jit
def _cross(op: Scattering, f, g, norm_f, norm_g, mask):
    batch = f.shape[:-2]
    if not batch:
        return _cross_single(op, f, g, norm_f, norm_g, mask)
    flat_f, flat_g = (x.reshape((-1,) + x.shape[-2:]) for x in (f, g))
    axis = None if norm_f is None or norm_f.ndim == 2 else 0
    if axis is not None:
        norm_f, norm_g = (n.reshape((-1,) + n.shape[-2:]) for n in (norm_f, norm_g))
    out = jax.vmap(_cross_single, in_axes=(None, 0, 0, axis, axis, None))(
        op, flat_f, flat_g, norm_f, norm_g, mask)
    return jax.tree_util.tree_map(lambda x: x.reshape(batch + x.shape[1:]), out)


def _field_map(op: Scattering, flm):
    """The field on the GL grid of ``L``: ``(L, 2L-1)``, real for real fields; a complex field
    as the syntheses of its two real parts ``(f + f*) / 2`` and ``(f - f*) / 2i``."""
    c = op.config
    if c.reality:
        return op.backend.synthesis_real(directional.real_half(flm), c.L)
    conj = jnp.flip(jnp.conj(flm), axis=-1) * _m_signs(c.L)  # (-1)^m conj(f_{l,-m}) at m
    re, im = (flm + conj) / 2, (flm - conj) / 2j
    half = slice(c.L - 1, None)
    return (op.backend.synthesis_real(directional.real_half(re[..., half]), c.L)
            + 1j * op.backend.synthesis_real(directional.real_half(im[..., half]), c.L))


def _m_signs(L):
    return jnp.asarray((-1.0) ** np.abs(np.arange(-(L - 1), L)))


def _finish(c: Config, mean, var, S1, S2, S3, S4, norm) -> Covariances:
    if norm is not None:
        S1, S2, S3, S4 = cov.normalise(S1, S2, S3, S4, norm)
    if c.isotropic:
        S3, S4 = cov.isotropic(S3, S4)
    flat = [jnp.concatenate([jnp.ravel(s) for s in stat]) for stat in (S1, S2, S3, S4)]
    return Covariances(mean, var, *flat)


def _single(op: Scattering, flm, norm, mask):
    c = op.config
    first_input = _as_input(op, flm)
    if mask is None:
        mean, var = cov.mean_variance(first_input, half=c.reality)
        stats = _statistics(op, first_input)
    else:
        mean, var = cov.weighted_moments(_field_map(op, first_input), mask.field)
        stats = _masked_statistics(op, first_input, mask.scales)
    return _finish(c, mean, var, *stats, norm)


def _batched(fn, op, flm, norm=None, mask=None):
    """Map ``fn(op, flm_i, norm_i, mask)`` over the leading batch axes of ``flm`` with ``vmap``
    (``norm`` shared or one per member, ``mask`` shared)."""
    core = 2
    batch = flm.shape[:-core]
    if not batch:
        return fn(op, flm, norm, mask)
    flat = flm.reshape((-1,) + flm.shape[-core:])
    axis = None if norm is None or norm.ndim == 2 else 0
    if axis is not None:
        norm = norm.reshape((-1,) + norm.shape[-2:])
    out = jax.vmap(fn, in_axes=(None, 0, axis, None))(op, flat, norm, mask)
    return jax.tree_util.tree_map(lambda x: x.reshape(batch + x.shape[1:]), out)


@jax.jit
def _scatter(op: Scattering, flm, norm, mask):
    return _batched(_single, op, flm, norm, mask)


def _norm_single(op: Scattering, flm, _norm, mask):
    c = op.config
    first_input = _as_input(op, flm)
    if mask is not None:
        return jnp.stack(_masked_first_layer(op, first_input, mask.scales)[3])
    hs = [op.weights[str(j)] for j in c.scales]
    if c.reality:
        ys = directional.analysis_scales(op.backend, [first_input] * len(hs), hs, c.N, real=True,
                                         fourier=True)
        return jnp.stack([cov.s2_fourier(jnp.stack(y)) for y in ys])
    W = directional.analysis_scales(op.backend, [first_input] * len(hs), hs, c.N, real=False)
    return jnp.stack([cov.s2(w, op.quadrature[str(j)]) for w, j in zip(W, c.scales)])


@jax.jit
def _norm(op: Scattering, flm, mask):
    return _batched(_norm_single, op, flm, None, mask)


@jax.jit
def _to_map(op: Scattering, flm):
    return _field_map(op, _as_input(op, flm))


@jax.jit
def _from_map(op: Scattering, f):
    return op.backend.analysis_real(f, op.config.L)
