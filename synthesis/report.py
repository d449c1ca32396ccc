r"""Validation of the samples against the target: numbers (``metrics.json``) and a figure.

All maps are HEALPix maps of the band-limited coefficients at ``nside`` (default: the smallest
power of two ``>= L``), standardised with the **target's** pixel mean and standard deviation
(``u = (f - mean_t) / std_t``), so target and samples share one scale.

Numbers (``compute_metrics``):

* ``cl``: ``C_l = sum_m |f_lm|^2 / (2l+1)``. Over the band ``l_min <= l < L`` with
  ``l_min = max(2, 2^J_min)`` (the degrees the wavelets constrain), in dyadic bins
  ``[2^k, 2^(k+1))``: band powers ``P_b = sum_{l in b} (2l+1) C_l``;
  ``rel_error_bins[b] = |mean_samples P_b / P_b^target - 1|``; ``rel_error`` = their mean,
  ``rel_error_max`` their maximum; ``rel_error_per_ell``: the mean over ``l`` of
  ``|mean_samples C_l / C_l^target - 1|`` without binning (dominated by the few modes at low l).
* ``pdf``: ``wasserstein1``: the earth mover's distance between the target's pixel values
  and each sample's (same number of pixels: the mean of ``|sorted u_t - sorted u_s|``), mean
  over samples, in units of ``std_t``; ``ks``: the largest gap between the two empirical CDFs,
  mean over samples; skewness and excess kurtosis of target and samples;
  ``skewness_rel_error = |mean_samples skew - skew_t| / |skew_t|``.
* ``minkowski``: ``V0, V1, V2`` (:mod:`synthesis.minkowski`) at ``thresholds`` values of ``nu``
  on ``[-3, 4]``; ``distance[k] = rms_nu(mean_samples V_k - V_k^target) / max_nu |V_k^target|``.
* ``loss``: mean loss at the start and the end, their ratio, and each sample's.
* ``statistics``: for each of mean, var, S1..S4 (normalised by the target),
  ``rms(mean_samples - target) / rms(target)``.
* ``criteria``: the project's quality bar: ``cl_within_10pct`` (``cl.rel_error <= 0.1``),
  ``skewness_within_10pct``, ``loss_reduced_1000x``.

Real skies. An **ensemble** target: C_l, the pixel PDF and the statistics are the members'
(mean; pooled pixels); the maps show the first member. A **masked** target is compared on its
observed sky (``mask > 1/2``): its C_l as a pseudo-spectrum over the mask's effective sky
fraction ``mean(w^2)``, the samples' C_l the same way through the same mask (like for like;
their full-sky C_l is drawn dashed), its statistics with the mask (what the loss matched).
A **constrained** run (inpainting) compares the samples' **masked region** with the
target's observed sky (C_l through ``1 - w``, pixel values where ``w <= 1/2``), and its
statistics panels show the goal of the loss, each completed map's own observed-sky
statistics; ``pdf.skewness_completed_*`` are the completed maps' as a whole, which the
skewness criterion then reads (the masked region alone is a small sky: a lognormal field's
skewness differs between a 15 deg band and the rest of the sky by 25 % rms over seeds).
``mask.observed_fraction``, ``constrained``, ``target_members`` record what was compared.
"""

from __future__ import annotations

import matplotlib
import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from s2scat_core import harmonics
from s2scat_core.labels import STATISTICS

from . import minkowski
from .io import atomic_path
from .params import power_spectrum
from .render import mollweide_pixels, project

__all__ = ["auto_nside", "compute", "compute_metrics", "healpix_maps", "write_figure"]


def auto_nside(L: int) -> int:
    """Smallest power of two ``>= L`` (at least 16)."""
    return max(16, 1 << int(np.ceil(np.log2(L))))


def _moments(u):
    u = np.asarray(u, dtype=np.float64)
    d = u - u.mean(axis=-1, keepdims=True)
    var = np.mean(d**2, axis=-1)
    return np.mean(d**3, axis=-1) / var**1.5, np.mean(d**4, axis=-1) / var**2 - 3


def dyadic_bins(l_min: int, L: int) -> list[tuple[int, int]]:
    """``[lo, hi)`` bins ``[2^k, 2^(k+1))`` clipped to ``[l_min, L)``."""
    bins, k = [], 0
    while 2**k < L:
        lo, hi = max(2**k, l_min), min(2 ** (k + 1), L)
        if hi > lo:
            bins.append((lo, hi))
        k += 1
    return bins


def healpix_maps(flm, nside):
    """HEALPix (RING) maps ``(..., 12 nside^2)`` of real fields' ``(..., L, 2L-1)``
    coefficients (one field or a stack)."""
    import healpy as hp

    flm = np.asarray(flm)
    L = flm.shape[-2]
    if flm.ndim == 2:
        return hp.alm2map(harmonics.to_healpy_alm(flm), nside, lmax=L - 1)
    return np.stack([hp.alm2map(harmonics.to_healpy_alm(f), nside, lmax=L - 1) for f in flm])


def _pseudo_cl(maps, weight, L):
    """``C_l`` of ``weight * map`` (means removed) over ``mean(weight^2)``: the pseudo-spectrum
    of a cut sky divided by its effective sky fraction, ``(..., L)``."""
    import healpy as hp

    maps = np.atleast_2d(maps)
    out = []
    for m in maps:
        mu = np.sum(weight * m) / np.sum(weight)
        out.append(hp.anafast(weight * (m - mu), lmax=L - 1) / np.mean(weight**2))
    return np.stack(out)


def _interior(weight, L):
    """Pixels of weight 1 about a resolution element (``pi / L``) from any edge, where the
    map's derivatives hardly feel the mask (Minkowski functionals); all pixels of weight 1
    if none is that far."""
    import healpy as hp

    smooth = hp.smoothing(weight, fwhm=np.pi / L, iter=1)
    inside = (weight >= 1.0) & (smooth > 0.99)
    return inside if inside.any() else weight >= 1.0


def compute(target_flm, samples_flm, *, op=None, nside: int = 0, thresholds: int = 31,
            bins: int = 60, J_min: int = 0, members=None, mask=None, mask_grid=None,
            free=None, apodisation=None) -> dict:
    """Everything the figure and the metrics need (arrays), from the coefficients.

    ``target_flm (L, 2L-1)``, ``samples_flm (count, L, 2L-1)``; ``op``: the statistics'
    operator (``None``: no scattering panels/metrics). ``members (M, L, 2L-1)``: an ensemble
    target (C_l, PDF and statistics are the members'; the maps show the first). ``mask``
    (HEALPix, any nside) and ``mask_grid`` (the statistics' GL grid): the target is compared
    on its observed sky (``mask > 1/2``; C_l as pseudo-spectra over the sky fraction, the
    statistics with ``op.scatter(..., mask=)``), the samples on the full sky, and in the
    same way through the mask (``cl_s_masked``). ``free (count, L, 2L-1)``: a constrained run:
    the sample maps are the target where the mask is 1 and the free fields where it is 0,
    compared with the target on the **masked region** only.
    """
    from .targets import masks as sky_masks

    target_flm = np.asarray(target_flm)
    samples_flm = np.asarray(samples_flm)
    L = target_flm.shape[0]
    nside = nside or auto_nside(L)
    t_map = healpix_maps(target_flm, nside)
    weight = None if mask is None else sky_masks.to_nside(np.asarray(mask, float), nside)
    if free is not None:
        if weight is None:
            raise ValueError("a constrained run's report needs its mask")
        s_maps = weight * t_map + (1 - weight) * healpix_maps(free, nside)
    else:
        s_maps = healpix_maps(samples_flm, nside)
    s_maps = np.atleast_2d(s_maps)
    t_maps = healpix_maps(members, nside) if members is not None else t_map[None]
    t_maps = np.atleast_2d(t_maps)
    observed = np.ones(t_map.size, bool) if weight is None else weight > 0.5
    t_values = t_maps[:, observed].ravel()
    s_values = s_maps[:, ~observed] if free is not None else s_maps
    mean, std = float(t_values.mean()), float(t_values.std())
    std = std if std > 0 else 1.0
    ut, us = (t_values - mean) / std, (s_values - mean) / std
    show_t = (t_map - mean) / std
    if weight is not None:
        show_t = np.where(observed, show_t, np.nan)
    show_s = (s_maps[0] - mean) / std

    # Minkowski functionals: interior pixels of the region compared
    t_where = None if weight is None else _interior(weight, L)
    s_where = None if free is None else _interior(1.0 - weight, L)
    nus = np.linspace(-3.0, 4.0, thresholds)
    mf_t = np.mean([minkowski.functionals(f, nus, nside=nside, mean=mean, std=std, where=t_where)
                    for f in (members if members is not None else target_flm[None])], axis=0)
    mf_s = np.stack([minkowski.functionals(f, nus, nside=nside, mean=mean, std=std, where=s_where)
                     for f in samples_flm])
    lo = min(ut.min(), us.min())
    hi = max(ut.max(), us.max())
    edges = np.linspace(lo, hi, bins + 1)
    pdf_t = np.histogram(ut, edges, density=True)[0]
    pdf_s = np.stack([np.histogram(u, edges, density=True)[0] for u in us])
    fields = members if members is not None else target_flm[None]
    if weight is None:
        cl_t = power_spectrum(fields).mean(axis=0)
        cl_s = power_spectrum(samples_flm)
        cl_s_masked = None
    else:
        cl_t = _pseudo_cl(t_maps, weight, L).mean(axis=0)
        if free is not None:  # the masked region of the samples against the observed sky
            cl_s = _pseudo_cl(s_maps, 1.0 - weight, L)
            cl_s_masked = None
        else:
            cl_s = _pseudo_cl(s_maps, weight, L)  # like for like with the target
            cl_s_masked = power_spectrum(samples_flm)  # the samples' full sky, for the figure
    out = dict(L=L, nside=nside, cl_t=cl_t, cl_s=cl_s, cl_s_full=cl_s_masked, u_t=ut, u_s=us,
               show_t=show_t, show_s=show_s, edges=edges, pdf_t=pdf_t, pdf_s=pdf_s, nus=nus,
               mf_t=mf_t, mf_s=mf_s, J_min=J_min, t_map=t_map, s_maps=s_maps,
               mask_map=weight, constrained=free is not None, members=len(t_maps))
    if free is not None:  # the completed maps as a whole against the observed sky, too
        completed = (s_maps - mean) / std
        out["u_completed"] = completed
    if op is not None:
        prepared = None if mask_grid is None else op.mask(mask_grid, apodisation)
        norm = np.mean(np.asarray(op.norm(fields, mask=prepared)), axis=0)
        # a constrained run's goal: each completed map's own observed-sky statistics
        cov_t = op.scatter(samples_flm if free is not None else fields, norm=norm, mask=prepared)
        cov_s = op.scatter(samples_flm, norm=norm)
        out["cov_t"] = {k: np.asarray(v).mean(axis=0) for k, v in zip(STATISTICS, cov_t)}
        out["cov_t_spread"] = ({k: np.asarray(v).std(axis=0, ddof=1) for k, v in
                                zip(STATISTICS, cov_t)} if len(fields) > 1 else None)
        out["cov_s"] = {k: np.asarray(v) for k, v in zip(STATISTICS, cov_s)}
        out["labels"] = op.labels()
    return out


def _w1(a, b, levels: int = 4096) -> float:
    """1-Wasserstein distance of two samples of values, on ``levels`` quantiles."""
    u = (np.arange(levels) + 0.5) / levels
    return float(np.mean(np.abs(np.quantile(a, u) - np.quantile(b, u))))


def compute_metrics(data: dict, *, history=None, sample_losses=None) -> dict:
    """The numbers of ``metrics.json`` from :func:`compute`'s output and the loss records."""
    L = data["L"]
    l_min = max(2, 2 ** data["J_min"])
    cl_t, cl_s = data["cl_t"], data["cl_s"].mean(axis=0)
    ell = np.arange(L)
    band_bins = dyadic_bins(l_min, L)
    errors = []
    for lo, hi in band_bins:
        w = 2 * ell[lo:hi] + 1
        errors.append(abs(cl_s[lo:hi] @ w / (cl_t[lo:hi] @ w) - 1))
    keep = (ell >= l_min) & (cl_t > 0)
    per_ell = float(np.mean(np.abs(cl_s[keep] / cl_t[keep] - 1))) if keep.any() else float("nan")

    ut, us = data["u_t"], data["u_s"]
    sorted_t = np.sort(ut)
    w1 = float(np.mean([_w1(ut, u) for u in us]))
    grid = np.sort(np.concatenate([ut, us.ravel()]))
    cdf_t = np.searchsorted(sorted_t, grid, side="right") / ut.size
    ks = float(np.mean([np.max(np.abs(cdf_t - np.searchsorted(np.sort(u), grid, side="right")
                                      / u.size)) for u in us]))
    skew_t, kurt_t = _moments(ut)
    skew_s, kurt_s = _moments(us)
    skew_err = float(abs(skew_s.mean() - skew_t) / abs(skew_t)) if skew_t != 0 else float("nan")
    completed = {}
    if "u_completed" in data:  # constrained: the completed maps, observed sky included
        skew_c, kurt_c = _moments(data["u_completed"])
        completed = {"skewness_completed_mean": float(skew_c.mean()),
                     "kurtosis_completed_mean": float(kurt_c.mean()),
                     "skewness_completed_rel_error": float(abs(skew_c.mean() - skew_t)
                                                           / abs(skew_t))}

    mf_t, mf_s = data["mf_t"], data["mf_s"].mean(axis=0)
    mf_dist = [float(np.sqrt(np.mean((mf_s[k] - mf_t[k]) ** 2)) / max(np.abs(mf_t[k]).max(), 1e-300))
               for k in range(3)]

    metrics = {
        "cl": {"l_min": l_min, "bins": band_bins, "rel_error_bins": errors,
               "rel_error": float(np.mean(errors)) if errors else float("nan"),
               "rel_error_max": float(np.max(errors)) if errors else float("nan"),
               "rel_error_per_ell": per_ell},
        "pdf": {"wasserstein1": w1, "ks": ks, "skewness_target": float(skew_t),
                "skewness_samples": skew_s.tolist(), "skewness_samples_mean": float(skew_s.mean()),
                "skewness_rel_error": skew_err, "kurtosis_target": float(kurt_t),
                "kurtosis_samples_mean": float(kurt_s.mean()), **completed},
        "minkowski": {"thresholds": data["nus"].tolist(), "distance": mf_dist,
                      "distance_mean": float(np.mean(mf_dist)), "nside": data["nside"]},
    }
    if "cov_t" in data:
        rel = {}
        for k in STATISTICS:
            t, s = data["cov_t"][k].ravel(), data["cov_s"][k].reshape(len(us), -1).mean(axis=0)
            scale = np.sqrt(np.mean(t**2))
            rel[k] = float(np.sqrt(np.mean((s - t) ** 2)) / scale) if scale > 0 else float(
                np.sqrt(np.mean((s - t) ** 2)))
        metrics["statistics"] = {"rel_rms_error": rel}
    if history is not None and len(history):
        history = np.asarray(history, dtype=float)
        loss = {"initial": float(history[0]), "final": float(history[-1]),
                "ratio": float(history[-1] / history[0]) if history[0] > 0 else float("nan")}
        if sample_losses is not None and len(sample_losses):
            sl = np.asarray(sample_losses, dtype=float)
            loss["initial_per_sample"] = sl[0].tolist()
            loss["final_per_sample"] = sl[-1].tolist()
            loss["ratio_per_sample"] = (sl[-1] / sl[0]).tolist()
        metrics["loss"] = loss
    if data.get("mask_map") is not None:
        metrics["mask"] = {"observed_fraction": float(np.mean(data["mask_map"]))}
    metrics["constrained"] = bool(data.get("constrained", False))
    metrics["target_members"] = int(data.get("members", 1))
    metrics["pdf"]["compared"] = (
        "target's observed sky against the samples' masked region" if data.get("constrained")
        else "target's observed sky against the samples' full sky"
        if data.get("mask_map") is not None else "target against samples, full sky")
    metrics["criteria"] = {
        "cl_within_10pct": bool(metrics["cl"]["rel_error"] <= 0.10),
        "skewness_within_10pct": bool(completed.get("skewness_completed_rel_error", skew_err)
                                      <= 0.10),
        "loss_reduced_1000x": bool("loss" in metrics and metrics["loss"]["ratio"] <= 1e-3),
    }
    return metrics


# ---------------------------------------------------------------------------- figure
def _band(ax, x, ys, color, label):
    m, s = ys.mean(axis=0), ys.std(axis=0)
    ax.plot(x, m, color=color, lw=1.2, label=label)
    if len(ys) > 1:
        ax.fill_between(x, m - s, m + s, color=color, alpha=0.25, lw=0)


def _grouped(labels, values, fields):
    """Mean of ``values (..., n)`` over entries sharing the label ``fields``; keys and means."""
    keys = np.stack([labels[f] for f in fields], axis=-1)
    uniq, inverse = np.unique(keys, axis=0, return_inverse=True)
    inverse = inverse.ravel()
    counts = np.bincount(inverse, minlength=len(uniq))
    out = np.zeros(values.shape[:-1] + (len(uniq),))
    for i in range(len(uniq)):
        out[..., i] = values[..., inverse == i].sum(axis=-1) / counts[i]
    return uniq, out


def write_figure(data: dict, path, *, history=None, title: str = "", cmap: str = "inferno"):
    """The validation figure (PNG, atomically): maps, C_l, PDF, Minkowski functionals, loss,
    S1-S4 against scale (and direction)."""
    fig = Figure(figsize=(16, 11.5), dpi=100)
    FigureCanvasAgg(fig)
    axes = fig.subplots(3, 4)
    fig.suptitle(title, fontsize=12)
    tcol, scol = "black", "tab:orange"

    # maps
    pixels = mollweide_pixels(data["nside"], 400)
    vmin, vmax = np.percentile(data["u_t"], [0.5, 99.5])
    colours = matplotlib.colormaps[cmap].with_extremes(bad="white")
    t_name = "target" + (" (observed sky)" if data.get("mask_map") is not None else "")
    s_name = "sample 1" + (" (completed)" if data.get("constrained") else "")
    for ax, u, name in ((axes[0, 0], data["show_t"], t_name), (axes[0, 1], data["show_s"], s_name)):
        img = ax.imshow(project(u, pixels), cmap=colours, vmin=vmin, vmax=vmax,
                        interpolation="nearest")
        ax.set_axis_off()
        ax.set_title(f"{name} (units of target std)", fontsize=9)
    fig.colorbar(img, ax=axes[0, :2].tolist(), orientation="horizontal", fraction=0.05, pad=0.02)

    # power spectrum
    ax = axes[0, 2]
    ell = np.arange(data["L"])
    sel = ell >= 1
    masked = data.get("mask_map") is not None
    if data.get("constrained"):
        t_label, s_label = "target, observed sky", "samples, masked region"
    elif masked:
        t_label, s_label = "target, observed sky", "samples through the mask"
    else:
        t_label, s_label = "target" + (f" (mean of {data['members']})" if data.get(
            "members", 1) > 1 else ""), "samples (mean ± std)"
    ax.loglog(ell[sel], data["cl_t"][sel], color=tcol, lw=1.2, label=t_label)
    _band(ax, ell[sel], data["cl_s"][:, sel], scol, s_label)
    if data.get("cl_s_full") is not None:
        ax.loglog(ell[sel], data["cl_s_full"][:, sel].mean(0), color=scol, ls="--", lw=1.0,
                  label="samples, full sky")
    ax.axvline(max(2, 2 ** data["J_min"]), color="grey", ls=":", lw=0.8)
    ax.set_xlabel(r"$\ell$")
    ax.set_ylabel(r"$C_\ell$")
    ax.set_title("angular power spectrum" + (" (pseudo-$C_\\ell$ / $f_{sky}$)" if masked else ""),
                 fontsize=10)
    ax.legend(fontsize=8)

    # pixel PDF
    ax = axes[0, 3]
    centres = 0.5 * (data["edges"][1:] + data["edges"][:-1])
    ax.semilogy(centres, np.where(data["pdf_t"] > 0, data["pdf_t"], np.nan), color=tcol, lw=1.2,
                label=t_label if masked else "target")
    _band(ax, centres, np.where(data["pdf_s"] > 0, data["pdf_s"], np.nan), scol,
          "samples, masked region" if data.get("constrained") else "samples")
    ax.set_xlabel("u (units of target std)")
    ax.set_title("pixel PDF", fontsize=10)
    ax.legend(fontsize=8)

    # Minkowski functionals
    names = (r"$V_0$ (area)", r"$V_1$ (length) [rad$^{-1}$]", r"$V_2$ (curvature) [rad$^{-2}$]")
    for k in range(3):
        ax = axes[1, k]
        ax.plot(data["nus"], data["mf_t"][k], color=tcol, lw=1.2, label="target")
        _band(ax, data["nus"], data["mf_s"][:, k], scol, "samples")
        ax.set_xlabel(r"threshold $\nu$ (units of target std)")
        ax.set_title(f"Minkowski functional {names[k]}", fontsize=10)
    axes[1, 0].legend(fontsize=8)

    # loss
    ax = axes[1, 3]
    if history is not None and len(history):
        ax.semilogy(np.arange(len(history)), history, color="tab:blue", lw=1.2)
    ax.set_xlabel("step")
    ax.set_title("mean loss", fontsize=10)

    # scattering statistics
    if "cov_t" in data:
        labels = data["labels"]
        for ax, stat in ((axes[2, 0], "S1"), (axes[2, 1], "S2")):
            lab = labels[stat]
            t = data["cov_t"][stat]
            s = data["cov_s"][stat]
            ks = np.unique(lab["k"])
            colors = [f"C{i}" for i in range(len(ks))]
            for k, c in zip(ks, colors):
                sel = lab["k"] == k
                ax.plot(lab["j"][sel], t[sel], "-", color=c, lw=1, label=f"k={k}")
                ax.errorbar(lab["j"][sel] + 0.05, s[:, sel].mean(0), s[:, sel].std(0), fmt="o",
                            color=c, ms=3, lw=0.8)
            ax.set_xlabel("scale j")
            ax.set_title(f"{stat} (normalised): {'goal' if data.get('constrained') else 'target'} "
                         f"lines, samples dots", fontsize=10)
            ax.legend(fontsize=7, ncol=2)
        for ax, stat, fields in ((axes[2, 2], "S3", ("j1", "j2")), (axes[2, 3], "S4", ("j1", "j2", "j3"))):
            lab = labels[stat]
            keys, t = _grouped(lab, data["cov_t"][stat], fields)
            _, s = _grouped(lab, data["cov_s"][stat], fields)
            x = np.arange(len(keys))
            ax.plot(x, t, "-", color=tcol, lw=1.2, marker=".", label="target")
            ax.errorbar(x, s.mean(0), s.std(0), fmt="o", color=scol, ms=3, lw=0.8, label="samples")
            step = max(1, len(keys) // 14)
            ax.set_xticks(x[::step])
            ax.set_xticklabels([",".join(map(str, k)) for k in keys[::step]], rotation=60,
                               fontsize=7)
            ax.set_xlabel(f"({', '.join(fields)})")
            ax.set_title(f"{stat} (normalised), mean over directions", fontsize=10)
            ax.legend(fontsize=8)
    else:
        for ax in axes[2]:
            ax.set_axis_off()
    fig.subplots_adjust(left=0.05, right=0.98, top=0.93, bottom=0.07, hspace=0.45, wspace=0.3)
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png", dpi=100)
    return path


# ---------------------------------------------------------------------------- pairs
def compute_cross(target_f, target_g, samples_f, samples_g, *, op=None, nside: int = 0,
                  J_min: int = 0, mask=None, mask_grid=None, apodisation=None) -> dict:
    """The cross numbers of a pair ``(f, g)`` (``metrics.json``'s ``"cross"``) and what the
    cross figure draws: the cross-spectrum ``C_l^fg = sum_m Re(f_lm conj g_lm) / (2l+1)``, the
    correlation coefficient ``r_l = C_l^fg / sqrt(C_l^f C_l^g)``, the maps' pixel correlation,
    and (with ``op``) the cross scattering statistics' ``rms(mean_samples - target) /
    rms(target)``. With a mask: pseudo-spectra through it, target and samples alike, and the
    target's pixels on its observed sky."""
    import healpy as hp

    from .targets import masks as sky_masks

    target_f, target_g = np.asarray(target_f), np.asarray(target_g)
    samples_f, samples_g = np.asarray(samples_f), np.asarray(samples_g)
    L = target_f.shape[0]
    nside = nside or auto_nside(L)
    weight = None if mask is None else sky_masks.to_nside(np.asarray(mask, float), nside)

    def spectra(f, g):
        if weight is None:
            a, b = harmonics.to_healpy_alm(f), harmonics.to_healpy_alm(g)
            return hp.alm2cl(a, b), hp.alm2cl(a), hp.alm2cl(b)
        mf, mg = healpix_maps(f, nside), healpix_maps(g, nside)
        mf, mg = weight * (mf - np.mean(mf)), weight * (mg - np.mean(mg))
        cls = hp.anafast([mf, mg, mf * 0], lmax=L - 1, pol=False)
        return cls[3] / np.mean(weight**2), cls[0] / np.mean(weight**2), cls[1] / np.mean(weight**2)

    def r(cl):
        fg, ff, gg = cl
        return np.divide(fg, np.sqrt(ff * gg), out=np.zeros_like(fg), where=ff * gg > 0)

    cl_t = spectra(target_f, target_g)
    cl_s = [spectra(f, g) for f, g in zip(samples_f, samples_g)]
    observed = slice(None) if weight is None else weight > 0.5

    def pixel_r(f, g, where):
        mf, mg = healpix_maps(f, nside)[where], healpix_maps(g, nside)[where]
        return float(np.corrcoef(mf, mg)[0, 1])

    l_min = max(2, 2 ** J_min)
    r_t, r_s = r(cl_t), np.stack([r(c) for c in cl_s])
    out = {"L": L, "l_min": l_min, "cl_fg_t": cl_t[0], "cl_fg_s": np.stack([c[0] for c in cl_s]),
           "r_t": r_t, "r_s": r_s, "masked": weight is not None}
    metrics = {"r_l_abs_error": float(np.mean(np.abs(r_s.mean(0) - r_t)[l_min:])),
               "pixel_correlation_target": pixel_r(target_f, target_g, observed),
               "pixel_correlation_samples": [pixel_r(f, g, slice(None))
                                             for f, g in zip(samples_f, samples_g)]}
    if op is not None:
        prepared = None if mask_grid is None else op.mask(mask_grid, apodisation)
        norms = (op.norm(target_f, mask=prepared), op.norm(target_g, mask=prepared))
        ct = op.cross(target_f, target_g, norm=norms, mask=prepared)
        cs = op.cross(samples_f, samples_g, norm=norms)
        rel = {}
        for name, t, s in zip(ct._fields, ct, cs):
            t, s = np.ravel(t), np.asarray(s).reshape(len(samples_f), -1).mean(0)
            scale = np.sqrt(np.mean(t**2))
            rel[name] = float(np.sqrt(np.mean((s - t) ** 2)) / (scale if scale > 0 else 1.0))
        metrics["statistics"] = {"rel_rms_error": rel}
    out["metrics"] = metrics
    return out


def write_cross_figure(data: dict, path, *, title: str = ""):
    """The pair's cross figure (PNG, atomically): ``r_l`` and ``C_l^fg``, target and samples."""
    fig = Figure(figsize=(11, 4.2), dpi=100)
    FigureCanvasAgg(fig)
    axes = fig.subplots(1, 2)
    fig.suptitle(title, fontsize=11)
    ell = np.arange(data["L"])
    sel = ell >= 1
    how = " (pseudo, through the mask)" if data["masked"] else ""
    for ax, t, s, name in ((axes[0], data["r_t"], data["r_s"], r"$r_\ell = C^{fg}_\ell / "
                            r"\sqrt{C^f_\ell C^g_\ell}$"),
                           (axes[1], data["cl_fg_t"], data["cl_fg_s"], r"$C^{fg}_\ell$")):
        ax.plot(ell[sel], t[sel], color="black", lw=1.2, label="target pair")
        _band(ax, ell[sel], s[:, sel], "tab:orange", "sample pairs (mean ± std)")
        ax.axvline(data["l_min"], color="grey", ls=":", lw=0.8)
        ax.set_xscale("log")
        ax.set_xlabel(r"$\ell$")
        ax.set_title(name + how, fontsize=10)
        ax.legend(fontsize=8)
    axes[0].set_ylim(-1.05, 1.05)
    fig.subplots_adjust(left=0.07, right=0.98, top=0.86, bottom=0.13, wspace=0.25)
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png", dpi=100)
    return path
