"""Mistake gallery and discordant strip: which images they pick, in what order, the caps, and what the PNGs show."""
from __future__ import annotations

import numpy as np
from PIL import Image

from facelab.evaluation.gallery import discordant_strip, mistake_gallery, select_mistakes
from facelab.evaluation.stats import mcnemar_exact

CLASSES = ["angry", "happy", "sad"]
RED, GREEN, BLUE, MAGENTA = (230, 0, 0), (0, 200, 0), (0, 0, 230), (200, 0, 200)


def colour_count(path, colour, tolerance: int = 30) -> tuple[int, float]:
    """How many pixels of the PNG are this colour, and their mean row (to tell which grid row they sit in)."""
    pixels = np.asarray(Image.open(path).convert("RGB")).astype(int)
    mask = (np.abs(pixels - np.array(colour)) <= tolerance).all(axis=-1)
    rows = np.nonzero(mask)[0]
    return int(mask.sum()), float(rows.mean()) if rows.size else float("nan")


def confusion_case():
    """16 mistakes in three cells (angry->happy 12, sad->angry 3, happy->sad 1) among 40 images, each cell
    its own colour, the right answers magenta; the probability of the wrong class falls with the index."""
    actual = np.array([0] * 12 + [2] * 3 + [1] + [0, 1, 2] * 8)
    predicted = np.array([1] * 12 + [0] * 3 + [2] + [0, 1, 2] * 8)
    n = len(actual)
    probabilities = np.full((n, 3), 0.1)
    confidence = np.linspace(0.5, 0.8, n)
    confidence[[3, 7]] = 0.99  # two mistakes out of test order: they must lead their cell
    probabilities[np.arange(n), predicted] = confidence
    probabilities /= probabilities.sum(1, keepdims=True)
    colours = [RED] * 12 + [GREEN] * 3 + [BLUE] + [MAGENTA] * 24
    pixels = np.stack([np.full((32, 32, 3), c, dtype=np.uint8) for c in colours])
    names = [f"data/raw/person_{i:04d}.png" for i in range(n)]
    return pixels, actual, predicted, probabilities, names


def test_cells_come_largest_first_and_most_confident_first_within_a_cell():
    _, actual, predicted, probabilities, _ = confusion_case()
    cells = select_mistakes(actual, predicted, probabilities, per_cell=8, max_total=32)
    assert [(c["actual"], c["predicted"], c["total"]) for c in cells] == [(0, 1, 12), (2, 0, 3), (1, 2, 1)]
    assert cells[0]["index"] == [3, 7, 11, 10, 9, 8, 6, 5]  # capped at 8; the two sure ones, then falling index
    confidence = probabilities[np.arange(len(predicted)), predicted]
    for cell in cells:
        assert list(confidence[cell["index"]]) == sorted(confidence[cell["index"]], reverse=True)


def test_the_total_cap_takes_each_cells_next_image_in_turn():
    _, actual, predicted, probabilities, _ = confusion_case()
    cells = select_mistakes(actual, predicted, probabilities, per_cell=8, max_total=10)
    # rank 0 of every cell (3), then ranks 1 and 2 of the two cells that have them (4), then the big cell alone
    assert [len(c["index"]) for c in cells] == [6, 3, 1]
    assert sum(len(c["index"]) for c in select_mistakes(actual, predicted, probabilities, 8, 3)) == 3


def test_gallery_png_shows_only_the_wrong_images_largest_cell_on_top(tmp_path):
    pixels, actual, predicted, probabilities, names = confusion_case()
    path = tmp_path / "mistakes.png"
    cells = mistake_gallery(pixels, actual, predicted, probabilities, names, CLASSES, path, per_cell=8, max_total=10)
    assert [len(c["index"]) for c in cells] == [6, 3, 1]
    red, red_row = colour_count(path, RED)
    green, green_row = colour_count(path, GREEN)
    blue, blue_row = colour_count(path, BLUE)
    assert colour_count(path, MAGENTA)[0] == 0  # no correctly classified image
    assert blue > 500  # one 32 px tile, drawn at least at its own size
    # equal tiles: the pixel counts follow the images shown (6 : 3 : 1), within antialiasing at their edges
    assert 5 < red / blue < 7 and 2.5 < green / blue < 3.5
    assert red_row < green_row < blue_row


def test_gallery_without_mistakes_says_so(tmp_path):
    pixels, actual, _, probabilities, names = confusion_case()
    path = tmp_path / "mistakes.png"
    assert mistake_gallery(pixels, actual, actual, probabilities, names, CLASSES, path) == []
    grey = np.asarray(Image.open(path).convert("L")).astype(int)
    assert (grey < 100).sum() > 200  # the sentence is drawn
    assert (grey > 240).mean() > 0.8  # on an otherwise empty white image


def test_discordant_strip_counts_are_mcnemars_and_capped(tmp_path):
    rng = np.random.default_rng(0)
    actual = rng.integers(0, 3, 60)
    base, head = actual.copy(), actual.copy()
    base[:11] = (actual[:11] + 1) % 3   # 11 only head gets right
    head[11:13] = (actual[11:13] + 2) % 3  # 2 only base gets right
    base[13:16] = head[13:16] = (actual[13:16] + 1) % 3  # 3 both get wrong: not discordant
    colours = [RED] * 11 + [BLUE] * 2 + [MAGENTA] * 47
    pixels = np.stack([np.full((32, 32, 3), c, dtype=np.uint8) for c in colours])
    names = [f"img{i}.png" for i in range(60)]
    path = tmp_path / "discordant.png"
    counts = discordant_strip(pixels, actual, base, head, names, CLASSES, path, limit=8)
    test = mcnemar_exact(actual, base, head)
    assert (counts["base_only"], counts["head_only"]) == (test["a_only"], test["b_only"]) == (2, 11)
    assert (counts["head_only_shown"], counts["base_only_shown"]) == (8, 2)
    red, red_row = colour_count(path, RED)
    blue, blue_row = colour_count(path, BLUE)
    assert colour_count(path, MAGENTA)[0] == 0
    assert 3.5 < red / blue < 4.5 and red_row < blue_row  # 8 head-only tiles above 2 base-only tiles


def test_discordant_strip_without_disagreement_says_so(tmp_path):
    actual = np.array([0, 1, 2, 1])
    pixels = np.zeros((4, 32, 32, 3), dtype=np.uint8)
    path = tmp_path / "discordant.png"
    counts = discordant_strip(pixels, actual, actual, actual, ["a", "b", "c", "d"], CLASSES, path)
    assert counts == {"head_only": 0, "base_only": 0, "head_only_shown": 0, "base_only_shown": 0}
    assert (np.asarray(Image.open(path).convert("L")) < 100).sum() > 200
