"""`facelab audit DIR` on a folder with a deliberately misfiled photo lists that photo (and its gallery shows it)."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from facelab.app import main
from facelab.data.faces import generate_emotions
from facelab.errors import UserError
from facelab.evaluation.label_issues import read_label_issues

CLASSES = ("angry", "happy", "sad")


def write_folder(root: Path, pixels: np.ndarray, labels: np.ndarray) -> None:
    for i, (image, label) in enumerate(zip(pixels, labels)):
        folder = root / CLASSES[label]
        folder.mkdir(parents=True, exist_ok=True)
        Image.fromarray(image).save(folder / f"{i:03d}.png")


def test_a_misfiled_photo_is_listed(tmp_path, capsys):
    pixels, labels = generate_emotions(300, 12, 64, seed=1)
    misfiled = int(np.flatnonzero(labels == 1)[0])  # a happy face filed under sad
    labels = labels.copy()
    labels[misfiled] = 2
    write_folder(tmp_path / "photos", pixels, labels)
    (tmp_path / "photos" / ".thumbnails").mkdir()  # hidden: not a class
    main(["audit", str(tmp_path / "photos"), "--gallery", str(tmp_path / "gallery.png"),
          "--json", str(tmp_path / "issues.json")])
    out = capsys.readouterr().out
    name = f"sad/{misfiled:03d}.png"
    assert f"{name}: sad -> happy" in out, out
    record = read_label_issues(tmp_path / "issues.json")
    assert name in [issue.file for issue in record.results.issues[:5]]
    assert record.results.images == 300
    assert Image.open(tmp_path / "gallery.png").size[0] > 300


def test_a_folder_with_one_class_is_an_error_naming_the_fix(tmp_path):
    (tmp_path / "only").mkdir()
    with pytest.raises(UserError, match="at least 2 classes"):
        from facelab.commands.audit import audit_folder
        audit_folder(tmp_path, None, tmp_path / "g.png")
