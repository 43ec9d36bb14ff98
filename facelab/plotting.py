"""Plotting set-up for every figure (train's histograms, evaluate's images, the report's charts): matplotlib on its
file-only backend, and a figure saved as a PNG atomically, then closed."""
from __future__ import annotations

from pathlib import Path

from facelab.files import write_with

DPI = 90  # the figures' resolution; mosaic sizes its text in pixels at this resolution


def pyplot():
    """matplotlib's pyplot on the file-only Agg backend: CI machines have no display. Imported on first use: a
    stage that draws nothing does not pay for it."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    return plt


def save(fig, path: str | Path, dpi: int = DPI) -> None:
    """The figure as a PNG, written atomically, then closed (pyplot keeps every open figure alive)."""
    write_with(path, lambda tmp: fig.savefig(tmp, dpi=dpi, format="png"))
    pyplot().close(fig)
