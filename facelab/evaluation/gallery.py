"""Image grids from test pixels: the mistake gallery per experiment (grouped by confusion cell) and a pull request's
discordant-image strip."""
from __future__ import annotations

from pathlib import Path

import numpy as np

from facelab.evaluation.mosaic import message, mosaic

CAPTION_CHARS = 20          # a file name longer than this keeps its end (the number that tells files apart)
PER_CELL, MAX_TOTAL = 8, 32  # issue 24: at most 8 mistakes per confusion cell and 32 per gallery


def select_mistakes(actual, predicted, probabilities, per_cell: int = PER_CELL,
                    max_total: int = MAX_TOTAL) -> list[dict]:
    """The wrong images to show, by confusion cell (true -> predicted), each cell's most confident first.

    Cells come in order of how many mistakes they hold (the largest confusion first). When the cells
    together hold more than `max_total`, each cell gives its next most confident image in turn, so a
    small cell keeps its worst mistake instead of being crowded out by a large one.
    Returns one dict per non-empty cell: actual, predicted, total (its mistakes), index (those shown)."""
    actual, predicted = np.asarray(actual), np.asarray(predicted)
    probabilities = np.asarray(probabilities)
    if not actual.shape == predicted.shape == probabilities.shape[:1]:
        raise ValueError(f"actual {actual.shape}, predicted {predicted.shape} and probabilities "
                         f"{probabilities.shape} must describe the same images")
    if per_cell < 1 or max_total < 1:
        raise ValueError(f"per_cell and max_total must be at least 1, got {per_cell}, {max_total}")
    confidence = probabilities[np.arange(len(predicted)), predicted]
    wrong = np.flatnonzero(actual != predicted)
    wrong = wrong[np.lexsort((wrong, -confidence[wrong]))]  # most confident first; ties in test order
    cells: dict[tuple[int, int], list[int]] = {}
    for i in wrong:
        cells.setdefault((int(actual[i]), int(predicted[i])), []).append(int(i))
    order = sorted(cells, key=lambda cell: (-len(cells[cell]), -confidence[cells[cell][0]], cell))
    shown = dict.fromkeys(order, 0)
    budget = max_total
    for rank in range(per_cell):
        for cell in order:
            if budget and rank < len(cells[cell]):
                shown[cell] += 1
                budget -= 1
    return [{"actual": cell[0], "predicted": cell[1], "total": len(cells[cell]), "index": cells[cell][:shown[cell]]}
            for cell in order]


def mistake_gallery(pixels, actual, predicted, probabilities, names, classes, path: str | Path,
                    per_cell: int = PER_CELL, max_total: int = MAX_TOTAL) -> list[dict]:
    """A PNG grid of the wrong test images, one row per confusion cell, each captioned with its file name and
    the probability the model gave its wrong class; a "no mistakes" image when there are none.
    Returns select_mistakes' cells (with class indices), so the caller can list what the grid shows."""
    cells = select_mistakes(actual, predicted, probabilities, per_cell, max_total)
    if not cells:
        message(f"no mistakes: all {len(actual)} test images are classified correctly", path)
        return cells
    probabilities = np.asarray(probabilities)
    rows = [(f"{classes[c['actual']]} \u2192 {classes[c['predicted']]}\n({len(c['index'])} of {c['total']})",
             [(pixels[i], f"{short_name(names[i])}\np={probabilities[i, c['predicted']]:.2f}") for i in c["index"]])
            for c in cells]
    shown, total = sum(len(c["index"]) for c in cells), sum(c["total"] for c in cells)
    mosaic(rows, f"mistakes, most confident first: {shown} of {total} shown "
                        f"(true \u2192 predicted; p = probability of the predicted class)", path)
    return cells


def discordant_strip(pixels, actual, pred_base, pred_head, names, classes, path: str | Path,
                     limit: int = 8) -> dict:
    """A PNG of the test images only one side of a pull request gets right: a row of those only head gets
    right, a row of those only base gets right (up to `limit` each, in test order), captioned with the true
    class and both predictions. Returns the counts shown and the full discordant counts (McNemar's b and c)."""
    actual, pred_base, pred_head = np.asarray(actual), np.asarray(pred_base), np.asarray(pred_head)
    if not actual.shape == pred_base.shape == pred_head.shape:
        raise ValueError(f"actual {actual.shape}, base {pred_base.shape} and head {pred_head.shape} predictions "
                         f"must cover the same test images; when the test split differs, leave the strip out")
    right_base, right_head = actual == pred_base, actual == pred_head
    head_only = np.flatnonzero(right_head & ~right_base)
    base_only = np.flatnonzero(right_base & ~right_head)
    counts = {"head_only": int(head_only.size), "base_only": int(base_only.size),
              "head_only_shown": int(min(limit, head_only.size)), "base_only_shown": int(min(limit, base_only.size))}
    if not head_only.size and not base_only.size:
        message(f"no discordant images: base and head are right on the same {int(right_base.sum())} "
                f"of {len(actual)} test images", path)
        return counts

    def caption(i: int) -> str:
        return (f"{short_name(names[i])}\ntrue {classes[actual[i]]}\n"
                f"base {classes[pred_base[i]]}, head {classes[pred_head[i]]}")

    rows = [(f"only head right\n({counts['head_only_shown']} of {counts['head_only']})",
             [(pixels[i], caption(i)) for i in head_only[:limit]]),
            (f"only base right\n({counts['base_only_shown']} of {counts['base_only']})",
             [(pixels[i], caption(i)) for i in base_only[:limit]])]
    mosaic(rows, "test images only one side gets right", path)
    return counts


def short_name(name: str) -> str:
    """A file's name without its folders, cut to CAPTION_CHARS keeping the end."""
    name = Path(str(name)).name
    return name if len(name) <= CAPTION_CHARS else "\u2026" + name[-(CAPTION_CHARS - 1):]
