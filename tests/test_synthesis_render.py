"""Frames and GIF: the layout (target beside the samples, colour bar, loss curve), the palette
shared by the frames and the GIF, the grid fine enough for the panels."""

import numpy as np
import pytest
from PIL import Image, ImageSequence

from synthesis.render import FrameLayout, FrameRenderer, auto_nside, write_gif


@pytest.fixture(scope="module")
def target(lognormal16):
    return lognormal16


def test_layout_of_the_default_frame():
    layout = FrameLayout(4, 900)  # target + 3 samples: 2 x 2 panels, colour bar and loss below
    assert (layout.ncols, layout.nrows, layout.panel) == (2, 2, 427)
    assert layout.height == layout.title + 2 * (layout.label + 213) + layout.strip
    boxes = [layout.map_box(i) for i in range(4)] + [layout.colorbar_box(), layout.loss_box()]
    for left, bottom, w, h in boxes:
        assert 0 <= left and left + w <= 1 and 0 <= bottom and bottom + h <= 1
    for a, b in zip(boxes, boxes[1:]):  # no two boxes overlap
        assert (a[0] + a[2] <= b[0] or b[0] + b[2] <= a[0] or a[1] + a[3] <= b[1]
                or b[1] + b[3] <= a[1])
    assert FrameLayout(3, 900).ncols == 3 and FrameLayout(5, 900).nrows == 2


def test_grid_fine_enough_for_the_panel():
    assert auto_nside(16) == 16 and auto_nside(512) == 256
    assert auto_nside(64, 427) == 128  # 427 px across 360 deg: pixels of 0.84 deg or less
    assert 58.6 / auto_nside(64, 427) <= 360 / 427


def test_frame_has_labelled_panels_a_colour_bar_and_the_palette(target, tmp_path):
    r = FrameRenderer(target, steps=10, panels=3, width=600, title="t", colors=56)
    path = r.draw(10, np.stack([target] * 3), np.geomspace(1, 1e-3, 11), tmp_path / "f.png")
    with Image.open(path) as im:
        assert im.size == (600, r.layout.height) and im.mode == "P"
        assert len(im.palette.colors) <= 56
    titles = [ax.get_title() for ax in r.fig.axes]
    assert titles[:4] == ["target", "sample 1", "sample 2", "sample 3"]
    bar = r.colorbar  # one, horizontal, below the maps, on the target's fixed scale
    assert bar.ax in r.fig.axes and bar.orientation == "horizontal"
    assert "standard deviation" in bar.ax.get_xlabel()
    assert bar.ax.get_xlim() == pytest.approx((r.vmin, r.vmax))
    assert bar.ax.get_position().y1 < min(ax.get_position().y0 for ax in r.fig.axes[:4])
    assert r.cmap.N == 56 - FrameRenderer.extra_colors
    assert r.loss_ax is not None and r.loss_line.get_xdata()[-1] == 10


def test_masked_target_panel_is_blank_where_masked(target, tmp_path):
    mask = np.ones(12 * 8**2)
    mask[: 6 * 8**2] = 0  # the northern half
    r = FrameRenderer(target, steps=1, panels=1, width=400, mask=mask, show_loss=False)
    shown = r.fig.axes[0].get_images()[0].get_array().filled(np.nan)
    assert r.fig.axes[0].get_title() == "target (observed sky)"
    rows, cols = shown.shape
    assert np.isnan(shown[: rows // 3]).all() and np.isfinite(shown[-rows // 4, cols // 2])


def test_gif_is_the_frames_with_the_last_held(target, tmp_path):
    r = FrameRenderer(target, steps=2, panels=1, width=300)
    rng = np.random.default_rng(0)
    frames = [r.draw(i, [target * (1 + 0.5 * rng.standard_normal())], np.ones(i + 1),
                     tmp_path / f"f{i}.png") for i in range(3)]
    gif = write_gif(frames, tmp_path / "a.gif", fps=10, hold=2)
    with Image.open(gif) as im:
        shown = [np.asarray(f.convert("RGB")) for f in ImageSequence.Iterator(im)]
        durations = [f.info["duration"] for f in ImageSequence.Iterator(Image.open(gif))]
    assert len(shown) == 3 and durations == [100, 100, 2100]
    for frame, drawn in zip(shown, frames):  # the frames' palette, not a new quantisation
        assert np.array_equal(frame, np.asarray(Image.open(drawn).convert("RGB")))
    assert write_gif([], tmp_path / "none.gif") is None
