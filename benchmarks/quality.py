"""When is a synthesis done? Quality checks for the time-to-quality benchmark.

A batch of samples has *reached quality* against a target when all three hold:

* **statistics within the target's own sample variance**: for each statistic ``s`` in
  S1..S4, ``chi2_s(x) = mean_i ((Phi_s(x)_i - Phi_s(t)_i) / sigma_s,i)^2`` with ``Phi`` the
  target-normalised covariances and ``sigma`` the spread of ``M`` independent realisations of
  the target's process (other seeds, ``ddof = 1``, floored at ``1e-3`` of its rms over the
  statistic); ``chi2(x)`` the mean of the four. The floor is the median over the
  realisations of their own ``chi2`` against the target, each with ``sigma`` from the other
  ``M - 1`` (leave one out): the batch passes when the mean of its samples' ``chi2`` is at
  most the floor, i.e. the samples are as close to the target as another realisation of the
  same field;
* **C_ell within 5 %**: the mean over dyadic bins ``[2^k, 2^(k+1))`` of ``l >= max(2, 2^J_min)``
  of ``|mean_samples P_b / P_b^target - 1|``, ``P_b = sum_{l in b} (2l+1) C_l`` (the report's
  ``cl.rel_error``);
* **skewness within 10 %**: ``|mean_samples skew - skew_t| / |skew_t|`` of the HEALPix maps at
  ``nside`` (the report's ``pdf.skewness_rel_error``).
"""

from __future__ import annotations

import dataclasses

import numpy as np

from synthesis.report import healpix_maps

STATS = ("S1", "S2", "S3", "S4")


@dataclasses.dataclass
class QualityCheck:
    """The target's statistics and the floor of its sample variance; call it on samples."""

    op: object
    norm: object
    target: dict          # statistic -> (n,) target values
    sigma: dict           # statistic -> (n,) spread of the realisations
    floor: float          # median chi2 of the realisations against the target
    cl_target: np.ndarray
    skew_target: float
    nside: int
    l_min: int

    @classmethod
    def build(cls, op, target_flm, realisations_flm, J_min: int):
        from synthesis.params import power_spectrum
        from synthesis.report import auto_nside

        L = op.config.L
        norm = op.norm(target_flm)
        target = _stats(op.scatter(target_flm, norm=norm))
        real = _stats(op.scatter(np.asarray(realisations_flm), norm=norm))
        sigma = {k: _spread(v) for k, v in real.items()}
        M = len(realisations_flm)
        loo = []
        for i in range(M):
            rest = {k: _spread(np.delete(v, i, axis=0)) for k, v in real.items()}
            loo.append(_chi2({k: v[i] for k, v in real.items()}, target, rest))
        nside = auto_nside(L)
        skew = float(_skew(healpix_maps(target_flm, nside)))
        return cls(op, norm, target, sigma, float(np.median(loo)),
                   power_spectrum(target_flm), skew, nside, max(2, 2**J_min))

    def __call__(self, samples_flm) -> dict:
        """``{chi2, floor, cl_error, skewness_error, reached}`` of ``(count, L, 2L-1)`` samples."""
        from synthesis.params import power_spectrum
        from synthesis.report import dyadic_bins

        samples_flm = np.asarray(samples_flm)
        stats = _stats(self.op.scatter(samples_flm, norm=self.norm))
        chi2 = float(np.mean([_chi2({k: v[i] for k, v in stats.items()}, self.target, self.sigma)
                              for i in range(len(samples_flm))]))
        cl_s = power_spectrum(samples_flm).mean(axis=0)
        L = samples_flm.shape[-2]
        ell = np.arange(L)
        errors = [abs(cl_s[lo:hi] @ (2 * ell[lo:hi] + 1) / (self.cl_target[lo:hi]
                                                           @ (2 * ell[lo:hi] + 1)) - 1)
                  for lo, hi in dyadic_bins(self.l_min, L)]
        cl_error = float(np.mean(errors))
        maps = np.atleast_2d(healpix_maps(samples_flm, self.nside))
        skew = float(np.mean([_skew(m) for m in maps]))
        skew_error = abs(skew - self.skew_target) / abs(self.skew_target)
        return {"chi2": chi2, "floor": self.floor, "cl_error": cl_error,
                "skewness_error": skew_error,
                "reached": bool(chi2 <= self.floor and cl_error <= 0.05 and skew_error <= 0.10)}


def _stats(cov) -> dict:
    return {k: np.asarray(getattr(cov, k)) for k in STATS}


def _spread(values) -> np.ndarray:
    s = np.std(values, axis=0, ddof=1)
    rms = np.sqrt(np.mean(s**2))
    return np.maximum(s, 1e-3 * rms if rms > 0 else 1e-300)


def _chi2(x: dict, t: dict, sigma: dict) -> float:
    return float(np.mean([np.mean(((x[k] - t[k]) / sigma[k]) ** 2) for k in STATS]))


def _skew(u) -> float:
    d = u - u.mean()
    return float(np.mean(d**3) / np.mean(d**2) ** 1.5)
