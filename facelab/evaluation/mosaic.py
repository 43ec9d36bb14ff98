"""Image grids as PNGs, drawn fast: labelled rows of captioned tiles composed in numpy and shown as one image
(saliency figure, mistake gallery, discordant strip)."""
from __future__ import annotations

import math
import textwrap
from pathlib import Path

import numpy as np

from facelab.plotting import DPI, pyplot, save

DISPLAY_TILE_PX = 120  # a 64 px image shows at about twice its size: faces and captions stay readable
LINE_PX = 11           # one caption line at CAPTION_POINTS and DPI, with leading
CAPTION_POINTS = 6.5
LABEL_PX = 110         # the row labels' column ("angry -> happy", "only head right")
TITLE_PX = 34          # the title's band with one line; each further line adds TITLE_LINE_PX
TITLE_LINE_PX = 14     # one title line at TITLE_POINTS and DPI, with leading
TITLE_POINTS = 9
TITLE_CHAR_PX = 7      # the widest average character of a TITLE_POINTS line at DPI: wrapping at this always fits


def mosaic(rows: list[tuple[str, list[tuple[np.ndarray, str]]]], title: str, path: str | Path) -> None:
    """Write a PNG with one row per (label, [(uint8 (H, W, 3) image, caption)]): the label at the left, each
    caption above its image, "none" in a row without images. All images share one size.

    One imshow of the composed canvas, not one axes per image: 40 axes took 2.5 s to lay out and save on
    the project's CPU, this about 0.3 s, which keeps the figures inside evaluate's time budget."""
    images = [np.asarray(image) for _, tiles in rows for image, _ in tiles]
    height, width = images[0].shape[:2] if images else (64, 64)
    if any(image.shape != (height, width, 3) or image.dtype != np.uint8 for image in images):
        raise ValueError(f"every tile must be uint8 ({height}, {width}, 3), like the first")
    scale = max(1.0, DISPLAY_TILE_PX / height)  # screen pixels per image pixel
    lines = max([caption.count("\n") + 1 for _, tiles in rows for _, caption in tiles] or [1])
    caption_h, pad = math.ceil((lines * LINE_PX + 4) / scale), math.ceil(8 / scale)
    label_w = math.ceil(LABEL_PX / scale) if any(label for label, _ in rows) else 0
    columns = max([1] + [len(tiles) for _, tiles in rows])
    cell_w, cell_h = width + pad, caption_h + height + pad
    canvas = np.full((len(rows) * cell_h, label_w + columns * cell_w, 3), 255, dtype=np.uint8)
    texts: list[tuple[float, float, str, str, str, float]] = []  # x, y, text, ha, va, font size
    for r, (label, tiles) in enumerate(rows):
        top = r * cell_h + caption_h
        texts.append((label_w - pad, top + height / 2, label, "right", "center", 8))
        if not tiles:
            texts.append((label_w + width / 2, top + height / 2, "none", "center", "center", 9))
        for c, (image, caption) in enumerate(tiles):
            left = label_w + c * cell_w
            canvas[top:top + height, left:left + width] = image
            texts.append((left + width / 2, top - 2, caption, "center", "bottom", CAPTION_POINTS))
    shown_h, shown_w = canvas.shape[0] * scale, canvas.shape[1] * scale
    title_lines = fitted_lines(title, shown_w)
    title_h = TITLE_PX + (len(title_lines) - 1) * TITLE_LINE_PX
    plt = pyplot()
    fig = plt.figure(figsize=(shown_w / DPI, (shown_h + title_h) / DPI), dpi=DPI)
    ax = fig.add_axes((0, 0, 1, shown_h / (shown_h + title_h)))
    ax.imshow(canvas, interpolation="nearest")
    ax.set_axis_off()
    for x, y, text, ha, va, size in texts:
        ax.text(x, y, text, ha=ha, va=va, fontsize=size)
    fig.text(0.5, 1 - 6 / (shown_h + title_h), "\n".join(title_lines), ha="center", va="top",
             fontsize=TITLE_POINTS)
    save(fig, path)


def fitted_lines(title: str, width_px: float) -> list[str]:
    """The title broken at spaces into lines that fit `width_px`: a centred line wider than the image is cut at
    both edges (a one-column gallery is 240 px wide, its title over 600)."""
    chars = max(10, int(width_px // TITLE_CHAR_PX))
    return [line for part in title.split("\n") for line in textwrap.wrap(part, chars) or [""]]


def message(text: str, path: str | Path) -> None:
    """A small image that says, in words, why there is nothing to show (an empty grid looks like a bug)."""
    fig = pyplot().figure(figsize=(6, 1.2), dpi=DPI)
    fig.text(0.5, 0.5, text, ha="center", va="center", fontsize=10, wrap=True)
    save(fig, path)
