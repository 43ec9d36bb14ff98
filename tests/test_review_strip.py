"""The review comment's strip of discordant test images: McNemar's counts, drawn from the workspace's prepared test
split when both revisions share it, and left out with the reason otherwise."""
from __future__ import annotations

import re

import numpy as np
import pandas as pd
from PIL import Image

from facelab import paths
from facelab.evaluation.records import Confusion
from facelab.evaluation.stats import mcnemar_exact
from facelab.files import write_json
from facelab.params import Split
from facelab.reporting.review import Side, discordant_lines
from tests.test_review import scored

CLASSES = ["angry", "happy", "sad"]


def side(actual, predicted) -> Side:
    frame = pd.DataFrame({"actual": [CLASSES[i] for i in actual], "predicted": [CLASSES[i] for i in predicted]})
    return Side(seed=0, metrics=scored(0.5), history=pd.DataFrame(), predictions=frame,
                confusion=Confusion(classes=list(CLASSES), raw=[], zscore=[]))


SPLIT = Split(train=0.6, val=0.2, test=0.2)


def write_prepared(root, test_images: int) -> None:
    """A prepared folder (prepare's layout) whose seed-0 test split holds `test_images` images."""
    folder = paths.prepared("emotion", root)
    folder.mkdir(parents=True)
    n = 5 * test_images
    np.save(paths.prepared_images(folder), np.random.default_rng(1).integers(0, 256, (n, 32, 32, 3), dtype=np.uint8))
    labels = np.arange(n, dtype=np.int64) % len(CLASSES)
    np.save(paths.prepared_labels(folder), labels)
    np.save(paths.prepared_groups(folder), np.arange(n, dtype=np.int64))
    pd.DataFrame({"file": [f"{i}.png" for i in range(n)], "class": [CLASSES[k] for k in labels],
                  "group": np.arange(n)}).to_csv(paths.prepared_manifest(folder), index=False)
    write_json(paths.prepared_classes(folder), {"classes": CLASSES})


def test_strip_counts_are_mcnemars_discordant_counts_and_the_image_is_written(tmp_path):
    rng = np.random.default_rng(0)
    actual = rng.integers(0, 3, 40)
    base, head = actual.copy(), actual.copy()
    base[:9] = (actual[:9] + 1) % 3      # 9 only head right
    head[9:12] = (actual[9:12] + 1) % 3  # 3 only base right
    write_prepared(tmp_path, 40)
    out = tmp_path / "review"
    out.mkdir()
    lines = discordant_lines("emotion", "resnet18_scratch", side(actual, base), side(actual, head), True, tmp_path, out,
                             SPLIT)
    test = mcnemar_exact(actual, base, head)
    found = re.search(r"(\d+) only head, (\d+) only base", lines[0])
    assert found, lines[0]
    assert (int(found[1]), int(found[2])) == (test["b_only"], test["a_only"]) == (9, 3)
    assert lines[-1] == "![emotion/resnet18_scratch: discordant test images](emotion_resnet18_scratch_discordant.png)"
    assert Image.open(out / "emotion_resnet18_scratch_discordant.png").size[0] > 300


def test_strip_is_left_out_with_the_reason_when_the_split_differs_or_is_absent(tmp_path):
    actual = np.array([0, 1, 2, 0])
    base, head = side(actual, actual), side(actual, [1, 1, 2, 0])
    differs = discordant_lines("emotion", "r", base, head, False, tmp_path, tmp_path, SPLIT)
    assert differs[0].startswith("No strip of discordant images: the test split differs between the revisions")
    absent = discordant_lines("emotion", "r", base, head, True, tmp_path, tmp_path, SPLIT)
    assert absent[0].startswith("No strip of discordant images: data/prepared/emotion is not in the workspace")
    write_prepared(tmp_path, 5)  # 5 test images at seed 0
    stale = discordant_lines("emotion", "r", base, head, True, tmp_path, tmp_path, SPLIT)
    assert "holds 5 test images but the predictions 4" in stale[0]
    assert list(tmp_path.glob("*.png")) == []
