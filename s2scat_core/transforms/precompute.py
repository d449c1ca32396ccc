r"""Backend ``precompute``: Wigner-d kernels tabulated once, transforms are matrix products.

Memory ``O(S L^3)`` for ``S`` spins (about 33 MB a spin at L = 128, 270 MB at L = 256);
the fastest backend wherever the kernels fit. Kernels come from the recursion in
:mod:`.wigner_d` (checked against s2fft's ``spin_spherical_kernel_jax`` in the tests).

Synthesis at spin ``s``: ``F[t, m] = sum_l K_s[m, t, l] alm[l, m]`` with
``K_s[m, t, l] = (-1)^s sqrt((2l+1)/(4 pi)) d^l_{m,-s}(theta_t)``, then an inverse FFT over ``m``.
Analysis (spin 0, real map): ``F = rfft_phi(f)``, ``alm[l, m] = sum_t A[m, l, t] F[t, m]`` with
``A[m, l, t] = w_t K_0[m, t, l]``.

Before tabulating, the size of the kernels is estimated (:func:`kernel_bytes`) and the build is
refused with a ``ValueError`` (the estimate, and the backends that need ``O(N L^2)``) when it
exceeds the free memory of the device that holds them, or of the host that computes them
(:func:`s2scat_core._memory.available`).
"""

from __future__ import annotations

import jax.numpy as jnp
import numpy as np

from .. import _memory
from . import wigner_d
from .base import SphericalTransforms, gl_thetas, gl_weights, register


def _real_times_complex(subscripts: str, kernel, x):
    """``einsum(subscripts, kernel, x)`` for a real kernel and complex ``x``, as two real products."""
    out = jnp.einsum(subscripts, kernel, jnp.stack([x.real, x.imag]), optimize=True)
    return out[0] + 1j * out[1]


def kernel_bytes(bandlimits, spins, dtype=np.float64) -> int:
    """Bytes of the kernels :class:`PrecomputeTransforms` keeps for these band-limits and spins:
    at each band-limit ``B``, ``(2B-1, B, B)`` a spin, and the real spin-0 synthesis and
    analysis, ``(B, B, B)`` each."""
    spins = set(int(s) for s in spins)
    per = sum(len(spins) * (2 * B - 1) * B * B + 2 * B ** 3 for B in set(map(int, bandlimits)))
    return per * np.dtype(dtype).itemsize


def build_bytes(bandlimits) -> int:
    """Host bytes the tabulation needs besides the kernels kept: a few float64 Wigner-d tables
    ``(B, B, 2B-1)`` of the largest band-limit ``B`` at once."""
    B = max(map(int, bandlimits))
    return 3 * B * B * (2 * B - 1) * 8


def check_memory(bandlimits, spins, dtype=np.float64) -> None:
    """``ValueError`` when the kernels cannot fit the free memory (module doc)."""
    keep, extra = kernel_bytes(bandlimits, spins, dtype), build_bytes(bandlimits)
    free = _memory.available()
    needs = [("host", keep + extra if free["device"] is None else extra, free["host"]),
             ("device", keep, free["device"])]
    for where, need, have in needs:
        if have is not None and need > have:
            L = max(map(int, bandlimits))
            raise ValueError(
                f"mode 'precompute' would tabulate {_size(keep)} of Wigner-d kernels at L={L} "
                f"({len(set(spins))} spin(s), {np.dtype(dtype).name}; {_size(need)} of {where} "
                f"memory with the build), more than the {_size(have)} free: use mode "
                f"'recursive' or 'ducc', which need O(N L^2) memory")


def _size(n: int) -> str:
    return f"{n / 1e9:.1f} GB" if n >= 1e8 else f"{n / 1e6:.1f} MB"


@register
class PrecomputeTransforms(SphericalTransforms):
    def __init__(self, bandlimits, spins, dtype=np.float64):
        super().__init__(bandlimits, spins, dtype)
        check_memory(self.bandlimits, self.spins, self.dtype)
        synth, analysis = {}, {}
        norm_cache = {}
        for L in self.bandlimits:
            thetas = gl_thetas(L)
            ell = np.arange(L)
            norm_cache[L] = np.sqrt((2 * ell + 1) / (4 * np.pi))
            for s in set(self.spins) | {0}:
                d = wigner_d.table(L, -s, thetas) * norm_cache[L][None, :, None]  # (t, l, m)
                kernel = (-1.0) ** s * np.transpose(d, (2, 0, 1))  # (m, t, l)
                if s in self.spins:
                    synth[f"{L}:{s}"] = jnp.asarray(kernel, dtype=self.dtype)
                if s == 0:
                    half = kernel[L - 1:]  # (m >= 0, t, l)
                    synth[f"{L}:real"] = jnp.asarray(half, dtype=self.dtype)
                    analysis[f"{L}"] = jnp.asarray(
                        np.transpose(half, (0, 2, 1)) * gl_weights(L)[None, None, :], dtype=self.dtype)
        self.tables = {"synthesis": synth, "analysis": analysis}

    def synthesis_fourier(self, alm, L, spin):
        return _real_times_complex("mtl,...lm->...tm", self.tables["synthesis"][f"{L}:{spin}"], alm)

    def synthesis(self, alm, L, spin):
        ftm = self.synthesis_fourier(alm, L, spin)
        return jnp.fft.ifft(jnp.fft.ifftshift(ftm, axes=-1), axis=-1, norm="forward")

    def synthesis_real_fourier(self, alm_half, L):
        return _real_times_complex("mtl,...lm->...tm", self.tables["synthesis"][f"{L}:real"], alm_half)

    def synthesis_real(self, alm_half, L):
        ftm = self.synthesis_real_fourier(alm_half, L)
        return jnp.fft.irfft(ftm, n=2 * L - 1, axis=-1, norm="forward")

    def analysis_real(self, f, L, bandlimit=None):
        B = L if bandlimit is None else bandlimit
        kernel = self.tables["analysis"][f"{L}"][:B, :B]
        ftm = jnp.fft.rfft(f, axis=-1)[..., :B]
        return _real_times_complex("mlt,...tm->...lm", kernel, ftm)
