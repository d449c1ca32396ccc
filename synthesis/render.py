r"""Frames (PNG) of the samples during synthesis, and the animated GIF made from them.

A frame: the target beside the samples, each a labelled Mollweide panel on the target's fixed
colour scale (its 0.5 and 99.5 percentiles, for the whole run), one colour bar, the step and
loss above, a small loss curve below (:class:`FrameLayout`). Frames are indexed-colour PNGs on
one palette (:meth:`FrameRenderer.palette`: the colour map in ``colors - 24`` levels, greys for
the text, the loss curve's colours), so the GIF is exactly the frames: no flicker, no
re-quantisation, small files.

Maps are drawn in the Mollweide projection without healpy's plotting: the coefficients are
synthesised on a HEALPix grid (``healpy.alm2map``) fine enough for the panel and looked up
through a pixel-index image of the projection computed once, so a frame costs one SHT per
panel and one matplotlib draw.

Projection (inverse Mollweide, image coordinates ``x in [-2 sqrt 2, 2 sqrt 2]``,
``y in [-sqrt 2, sqrt 2]``): ``a = arcsin(y / sqrt 2)``, latitude
``arcsin((2a + sin 2a) / pi)``, longitude ``-pi x / (2 sqrt 2 cos a)`` (east to the left, as
healpy's ``mollview``).
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

__all__ = ["FrameLayout", "FrameRenderer", "auto_nside", "mollweide_pixels", "project", "write_gif"]


def auto_nside(L: int, width: int = 0, minimum: int = 16) -> int:
    """Smallest power of two ``>= L / 2`` (enough pixels for ``l < L``) whose pixels are also no
    larger than an image pixel of a Mollweide panel ``width`` pixels wide (and ``>= minimum``).

    A finer grid than ``L`` needs only interpolates the band-limited map: smooth panels.
    """
    # HEALPix pixels are sqrt(4 pi / 12) / nside ~ 58.6 deg / nside wide; the panel's equator
    # spans 360 deg in ``width`` pixels.
    need = max(L / 2, 58.6 * width / 360, 1)
    return max(minimum, 1 << int(np.ceil(np.log2(need))))


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


def project(m: np.ndarray, pixels: np.ndarray) -> np.ndarray:
    """The HEALPix map ``m`` as an image through :func:`mollweide_pixels`; NaN outside."""
    img = m[np.maximum(pixels, 0)].astype(float)
    img[pixels < 0] = np.nan
    return img


class FrameLayout:
    """Where everything goes in a frame ``width`` pixels wide, in pixels from the top left.

    Maps in a grid (``ncols`` columns: 2 for 2 or 4 maps, else up to 3), each a 2:1 Mollweide
    panel under its label; the title above; below, a colour bar (left) and, with ``loss``, a
    small loss curve (right).
    """

    margin, gap, title, label, strip = 16, 14, 46, 26, 112

    def __init__(self, n_maps: int, width: int, *, loss: bool = True):
        self.width = int(width)
        self.ncols = min(n_maps, 2 if n_maps == 4 else 3)
        self.nrows = -(-n_maps // self.ncols)
        self.panel = int((width - 2 * self.margin - (self.ncols - 1) * self.gap) / self.ncols)
        self.row = self.label + self.panel // 2
        self.height = self.title + self.nrows * self.row + self.strip
        self.loss = loss

    def _box(self, left, top, w, h):
        """``[left, bottom, width, height]`` as fractions of the figure (matplotlib's axes)."""
        return [left / self.width, 1 - (top + h) / self.height, w / self.width, h / self.height]

    def map_box(self, i: int):
        r, c = divmod(i, self.ncols)
        used = self.ncols * self.panel + (self.ncols - 1) * self.gap
        left = (self.width - used) / 2 + c * (self.panel + self.gap)
        return self._box(left, self.title + r * self.row + self.label, self.panel,
                         self.panel // 2)

    def colorbar_box(self):
        w = 0.46 * self.width if self.loss else 0.6 * self.width
        left = self.margin + 24 if self.loss else (self.width - w) / 2
        return self._box(left, self.height - self.strip + 30, w, 16)

    def loss_box(self):
        left = 0.62 * self.width
        return self._box(left, self.height - self.strip + 16, self.width - left - self.margin - 4,
                         self.strip - 48)


class FrameRenderer:
    """Draws one frame per call: target (optional) beside ``panels`` samples, labelled, on the
    target's fixed colour scale with its colour bar, and a small loss curve (optional).

    Args:
        target_flm: ``(L, 2L-1)`` target coefficients (sets the colour scale).
        steps: the step budget (x-range of the loss curve).
        panels: samples shown; ``show_target``, ``show_loss``: the target's panel, the curve.
        width: frame width, pixels (the height follows); ``cmap``: matplotlib colour map;
            ``nside``: HEALPix grid of the maps (0: :func:`auto_nside` for the panel width);
            ``title``: text before the step and loss above the maps.
        mask: the target's mask (HEALPix, any nside): its masked pixels are left blank in the
            target panel; with ``constrained`` the samples are drawn completed (:meth:`draw`).
        colors: size of the frames' palette (:meth:`palette`), at most 256.
    """

    dpi = 100
    extra_colors = 24  # palette entries beside the colour map's: 16 greys, 2 x 4 for the curve
    loss_colors = ("tab:blue", "tab:red")

    def __init__(self, target_flm, *, steps: int, panels: int = 3, show_target: bool = True,
                 show_loss: bool = True, width: int = 900, cmap: str = "inferno",
                 nside: int = 0, title: str = "", mask=None, constrained: bool = False,
                 colors: int = 88):
        import healpy as hp  # noqa: F401  (fail early if missing)

        target_flm = np.asarray(target_flm)
        self.L = target_flm.shape[0]
        self.steps = max(int(steps), 1)
        self.panels = int(panels)
        self.title = title
        layout = FrameLayout(self.panels + bool(show_target), width, loss=show_loss)
        self.layout = layout
        self.nside = nside or auto_nside(self.L, layout.panel)
        self.pixels = mollweide_pixels(self.nside, layout.panel)
        target_map = harmonics.to_map(target_flm, "healpix", nside=self.nside)
        self.completion = None
        if mask is not None:
            from .targets.masks import to_nside

            weight = to_nside(np.asarray(mask, float), self.nside)
            if constrained:
                self.completion = (weight, target_map)
            target_map = np.where(weight > 0.5, target_map, np.nan)
        self.vmin, self.vmax = np.nanpercentile(target_map, [0.5, 99.5])

        fig = Figure(figsize=(layout.width / self.dpi, layout.height / self.dpi), dpi=self.dpi)
        FigureCanvasAgg(fig)
        fig.patch.set_facecolor("white")
        self.fig = fig
        if not self.extra_colors + 8 <= colors <= 256:
            raise ValueError(f"colors must be in [{self.extra_colors + 8}, 256], got {colors}")
        levels = colors - self.extra_colors
        self.cmap = matplotlib.colormaps[cmap].resampled(levels).with_extremes(bad="white")
        names = ["target" + (" (observed sky)" if mask is not None else "")] * bool(show_target)
        names += [f"sample {i + 1}" for i in range(self.panels)]
        self.images = []
        for i, name in enumerate(names):
            ax = fig.add_axes(layout.map_box(i))
            ax.set_axis_off()
            ax.set_title(name, fontsize=13, pad=4)
            self.images.append(ax.imshow(np.full(self.pixels.shape, np.nan), cmap=self.cmap,
                                         vmin=self.vmin, vmax=self.vmax, interpolation="nearest",
                                         aspect="equal"))
        if show_target:
            self.images[0].set_data(project(target_map, self.pixels))
            self.images = self.images[1:]
        cax = fig.add_axes(layout.colorbar_box())
        bar = self.colorbar = fig.colorbar(self.images[0], cax=cax, orientation="horizontal",
                                           extend="both")
        bar.set_label("map value, in units of the target's standard deviation", fontsize=10,
                      labelpad=3)
        cax.tick_params(labelsize=9, length=3, pad=2)
        self.loss_ax = self.loss_line = self.loss_dot = None
        if show_loss:
            ax = fig.add_axes(layout.loss_box())
            ax.set_yscale("log")
            ax.set_xlim(0, self.steps)
            ax.text(0.99, 0.97, "loss", transform=ax.transAxes, ha="right", va="top",
                    fontsize=10)
            ax.set_xlabel("step", fontsize=9, labelpad=1)
            ax.tick_params(which="both", labelsize=8, length=2, pad=1)
            ax.yaxis.set_minor_formatter(NullFormatter())
            for side in ("top", "right"):
                ax.spines[side].set_visible(False)
            line, dot = self.loss_colors
            (self.loss_line,) = ax.plot([], [], color=line, lw=1.5)
            (self.loss_dot,) = ax.plot([], [], "o", color=dot, ms=4, clip_on=False)
            self.loss_ax = ax
        self.headline = fig.text(0.5, 1 - 12 / layout.height, "", ha="center", va="top",
                                 fontsize=15)
        self._palette = self.palette()

    def palette(self):
        """The frames' palette, a ``P`` image: the colour map's levels, 16 greys (text, lines,
        white), and the loss curve's two colours with 3 tints each (their antialiased edges)."""
        from PIL import Image

        levels = self.cmap(np.arange(self.cmap.N))[:, :3]
        greys = np.repeat(np.linspace(0, 1, 16)[:, None], 3, axis=1)
        tints = [c + (1 - c) * t for c in map(np.array, map(matplotlib.colors.to_rgb,
                                                               self.loss_colors))
                 for t in (0, 0.25, 0.5, 0.75)]
        rgb = np.round(255 * np.vstack([levels, greys, tints])).astype(np.uint8)
        image = Image.new("P", (1, 1))
        image.putpalette(rgb.ravel().tolist())
        return image

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
            image.set_data(project(m, self.pixels))
        history = np.asarray(history, dtype=float)
        loss = history[-1]
        ratio = f" (x{loss / history[0]:.1e} of start)" if history[0] > 0 else ""
        head = f"{self.title}:  " if self.title else ""
        self.headline.set_text(f"{head}step {step}/{self.steps},  loss {loss:.3e}{ratio}")
        if self.loss_ax is not None:
            steps = np.arange(len(history))
            positive = history > 0
            self.loss_line.set_data(steps[positive], history[positive])
            self.loss_dot.set_data([step], [loss])
            if positive.any():
                lo, hi = history[positive].min(), history[positive].max()
                self.loss_ax.set_ylim(lo / 2, hi * 2)
        from PIL import Image

        canvas = self.fig.canvas
        canvas.draw()
        image = Image.frombuffer("RGBA", canvas.get_width_height(), canvas.buffer_rgba())
        indexed = image.convert("RGB").quantize(palette=self._palette, dither=Image.Dither.NONE)
        path = Path(path)
        with atomic_path(path) as tmp:  # fast zlib level: frames are drawn between chunks
            indexed.save(tmp, format="PNG", compress_level=1)
        return path


def write_gif(frames, path, *, fps: float = 12.0, hold: float = 3.0, colors: int = 88
              ) -> Path | None:
    """Animated GIF of the PNG ``frames`` (in order) at ``fps``, holding the last ``hold`` s.

    Frames that are indexed-colour images on one palette (as :class:`FrameRenderer` writes
    them) go in as they are. Others share one palette of ``colors`` colours (median cut over
    the first, middle and last frames), without dithering: smaller files, no flicker. Returns
    ``None`` when there is no frame.
    """
    from PIL import Image

    frames = [Path(f) for f in frames]
    if not frames:
        return None
    images = []
    for f in frames:
        with Image.open(f) as im:
            im.load()
            images.append(im)
    palettes = {im.palette.tobytes() if im.mode == "P" else None for im in images}
    if None in palettes or len(palettes) > 1:
        images = [im.convert("RGB") for im in images]
        picks = sorted({0, len(images) // 2, len(images) - 1})
        w, h = images[0].size
        mosaic = Image.new("RGB", (w, h * len(picks)))
        for i, k in enumerate(picks):
            mosaic.paste(images[k], (0, h * i))
        palette = mosaic.quantize(colors=colors, method=Image.Quantize.MEDIANCUT)
        images = [im.quantize(palette=palette, dither=Image.Dither.NONE) for im in images]
    step_ms = int(round(1000 / fps))
    durations = [step_ms] * len(images)
    durations[-1] = step_ms + int(round(1000 * hold))
    path = Path(path)
    with atomic_path(path) as tmp:
        images[0].save(tmp, format="GIF", save_all=True, append_images=images[1:],
                       duration=durations, loop=0, optimize=True)
    return path
