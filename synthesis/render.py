r"""Frames (PNG) of the samples during synthesis, and the animated GIF made from them.

Maps are drawn in the Mollweide projection without healpy's plotting: the coefficients are
synthesised on a HEALPix grid (``healpy.alm2map``) and looked up through a pixel-index image of
the projection computed once, so a frame costs one SHT per panel and one matplotlib draw.

Projection (inverse Mollweide, image coordinates ``x in [-2 sqrt 2, 2 sqrt 2]``,
``y in [-sqrt 2, sqrt 2]``): ``a = arcsin(y / sqrt 2)``, latitude
``arcsin((2a + sin 2a) / pi)``, longitude ``-pi x / (2 sqrt 2 cos a)`` (east to the left, as
healpy's ``mollview``). Colour scale: fixed for the whole run, the target map's 0.5 and 99.5
percentiles.
"""

from __future__ import annotations

from pathlib import Path

import matplotlib
import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from matplotlib.ticker import NullFormatter
from s2scat_core import harmonics

from .io import atomic_path

__all__ = ["FrameRenderer", "auto_nside", "mollweide_pixels", "write_gif"]


def auto_nside(L: int, minimum: int = 16) -> int:
    """Smallest power of two ``>= L / 2`` (and ``>= minimum``): enough pixels for ``l < L``."""
    return max(minimum, 1 << int(np.ceil(np.log2(max(L / 2, 1)))))


def mollweide_pixels(nside: int, width: int) -> np.ndarray:
    """``(width // 2, width)`` HEALPix (RING) pixel index of each image pixel; -1 outside."""
    import healpy as hp

    height = width // 2
    x = (np.arange(width) + 0.5) / width * 4 * np.sqrt(2) - 2 * np.sqrt(2)
    y = np.sqrt(2) - (np.arange(height) + 0.5) / height * 2 * np.sqrt(2)
    X, Y = np.meshgrid(x, y)
    inside = X**2 / 8 + Y**2 / 2 < 1
    a = np.arcsin(np.clip(Y / np.sqrt(2), -1, 1))
    lat = np.arcsin(np.clip((2 * a + np.sin(2 * a)) / np.pi, -1, 1))
    lon = -np.pi * X / (2 * np.sqrt(2) * np.maximum(np.cos(a), 1e-12))
    pix = hp.ang2pix(nside, np.pi / 2 - lat[inside], np.mod(lon[inside], 2 * np.pi))
    out = np.full(X.shape, -1, dtype=np.int64)
    out[inside] = pix
    return out


def _project(m: np.ndarray, pixels: np.ndarray) -> np.ndarray:
    img = m[np.maximum(pixels, 0)].astype(float)
    img[pixels < 0] = np.nan
    return img


class FrameRenderer:
    """Draws one frame per call: target (optional), ``panels`` samples, loss curve (optional).

    Args:
        target_flm: ``(L, 2L-1)`` target coefficients (sets the colour scale).
        steps: the step budget (x-range of the loss curve).
        panels: samples shown; ``show_target``, ``show_loss``: extra panels.
        width: frame width, pixels; ``cmap``: matplotlib colour map; ``nside``: HEALPix grid of
            the maps (0: :func:`auto_nside`); ``title``: text above the maps.
        mask: the target's mask (HEALPix, any nside): its masked pixels are left blank in the
            target panel; with ``constrained`` the samples are drawn completed (:meth:`draw`).
    """

    dpi = 100

    def __init__(self, target_flm, *, steps: int, panels: int = 3, show_target: bool = True,
                 show_loss: bool = True, width: int = 720, cmap: str = "inferno", nside: int = 0,
                 title: str = "", mask=None, constrained: bool = False):
        import healpy as hp  # noqa: F401  (fail early if missing)

        target_flm = np.asarray(target_flm)
        self.L = target_flm.shape[0]
        self.nside = nside or auto_nside(self.L)
        self.steps = max(int(steps), 1)
        self.panels = int(panels)
        self.show_loss = show_loss
        self.title = title
        target_map = harmonics.to_map(target_flm, "healpix", nside=self.nside)
        self.completion = None
        if mask is not None:
            from .targets.masks import to_nside

            weight = to_nside(np.asarray(mask, float), self.nside)
            if constrained:
                self.completion = (weight, target_map)
            target_map = np.where(weight > 0.5, target_map, np.nan)
        self.vmin, self.vmax = np.nanpercentile(target_map, [0.5, 99.5])

        n_maps = self.panels + bool(show_target)
        ncols = min(n_maps, 2 if n_maps == 4 else 3)
        nrows = -(-n_maps // ncols)
        loss_cols = 1.25 if show_loss else 0.0
        cell = width / (ncols + loss_cols)
        pad_top, row_title = 34, 18
        height = int(round(nrows * (cell / 2 + row_title) + pad_top))
        self.pixels = mollweide_pixels(self.nside, max(int(cell) - 4, 16))

        fig = Figure(figsize=(width / self.dpi, height / self.dpi), dpi=self.dpi)
        FigureCanvasAgg(fig)
        fig.patch.set_facecolor("white")
        self.fig = fig
        total_w = ncols + loss_cols
        self.images, titles = [], ["target"] * bool(show_target) + [
            f"sample {i + 1}" for i in range(self.panels)]
        for i, name in enumerate(titles):
            r, c = divmod(i, ncols)
            left = c / total_w
            bottom = 1 - (pad_top + (r + 1) * (cell / 2 + row_title)) / height
            ax = fig.add_axes([left + 0.005, bottom, 1 / total_w - 0.01, (cell / 2) / height])
            ax.set_axis_off()
            ax.set_title(name, fontsize=8, pad=2)
            image = ax.imshow(np.full(self.pixels.shape, np.nan),
                              cmap=matplotlib.colormaps[cmap].with_extremes(bad="white"), vmin=self.vmin,
                              vmax=self.vmax, interpolation="nearest", aspect="equal")
            self.images.append(image)
        if show_target:
            self.images[0].set_data(_project(target_map, self.pixels))
            self.images = self.images[1:]
        self.loss_ax = self.loss_line = self.loss_dot = None
        if show_loss:
            ax = fig.add_axes([(ncols + 0.32) / total_w, 0.16, 0.86 / total_w,
                               1 - 0.16 - (pad_top + row_title) / height])
            ax.set_yscale("log")
            ax.set_xlim(0, self.steps)
            ax.set_xlabel("step", fontsize=7, labelpad=1)
            ax.set_title("loss", fontsize=8, pad=2)
            ax.tick_params(which="both", labelsize=6, length=2, pad=1)
            ax.yaxis.set_minor_formatter(NullFormatter())
            (self.loss_line,) = ax.plot([], [], color="tab:blue", lw=1)
            (self.loss_dot,) = ax.plot([], [], "o", color="tab:red", ms=3)
            self.loss_ax = ax
        self.suptitle = fig.text(0.5, 1 - 6 / height, "", ha="center", va="top", fontsize=9)

    def draw(self, step: int, samples_flm, history, path) -> Path:
        """Draw the frame of ``step`` and write it to ``path`` (PNG, atomically).

        ``samples_flm``: ``(count, L, 2L-1)`` (the first ``panels`` are shown; with
        ``constrained``, the free fields: the frame shows the target where the mask is 1 and
        them where it is 0); ``history``: mean loss before each step so far, ``(step + 1,)``.
        """
        import healpy as hp

        samples_flm = np.asarray(samples_flm)
        for image, flm in zip(self.images, samples_flm):
            m = hp.alm2map(harmonics.to_healpy_alm(flm), self.nside, lmax=self.L - 1)
            if self.completion is not None:
                weight, target = self.completion
                m = weight * target + (1 - weight) * m
            image.set_data(_project(m, self.pixels))
        history = np.asarray(history, dtype=float)
        loss = history[-1]
        ratio = f" ({loss / history[0]:.1e} of start)" if history[0] > 0 else ""
        head = f"{self.title}  " if self.title else ""
        self.suptitle.set_text(f"{head}step {step}/{self.steps}   loss {loss:.3e}{ratio}")
        if self.loss_ax is not None:
            steps = np.arange(len(history))
            positive = history > 0
            self.loss_line.set_data(steps[positive], history[positive])
            self.loss_dot.set_data([step], [loss])
            if positive.any():
                lo, hi = history[positive].min(), history[positive].max()
                self.loss_ax.set_ylim(lo / 2, hi * 2)
        path = Path(path)
        with atomic_path(path) as tmp:
            self.fig.savefig(tmp, format="png", dpi=self.dpi, facecolor="white")
        return path


def write_gif(frames, path, *, fps: float = 8.0, hold: float = 2.0, colors: int = 96) -> Path | None:
    """Animated GIF of the PNG ``frames`` (in order) at ``fps``, holding the last ``hold`` s.

    One palette of ``colors`` colours (median cut over the first, middle and last frames) is
    shared by all frames, without dithering: smaller files, no flicker. Returns ``None`` when
    there is no frame.
    """
    from PIL import Image

    frames = [Path(f) for f in frames]
    if not frames:
        return None
    images = []
    for f in frames:
        with Image.open(f) as im:
            images.append(im.convert("RGB"))
    picks = sorted({0, len(images) // 2, len(images) - 1})
    w, h = images[0].size
    mosaic = Image.new("RGB", (w, h * len(picks)))
    for i, k in enumerate(picks):
        mosaic.paste(images[k], (0, h * i))
    palette = mosaic.quantize(colors=colors, method=Image.Quantize.MEDIANCUT)
    indexed = [im.quantize(palette=palette, dither=Image.Dither.NONE) for im in images]
    step_ms = int(round(1000 / fps))
    durations = [step_ms] * len(indexed)
    durations[-1] = step_ms + int(round(1000 * hold))
    path = Path(path)
    with atomic_path(path) as tmp:
        indexed[0].save(tmp, format="GIF", save_all=True, append_images=indexed[1:],
                        duration=durations, loop=0, optimize=True)
    return path
