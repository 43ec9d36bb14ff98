"""One lister for scan and prepare: linked, nested, looped and replaced trees give scan's count = prepare's, hidden
files are never read, and a folder beside the class folders that cannot be read does not stop prepare."""
from __future__ import annotations

import json
import os

import numpy as np
import pytest
from PIL import Image

from facelab.data import listing, prepare
from facelab.data.images import BROKEN_LINK, LINK_LOOP
from facelab.data.listing import UNREADABLE_FOLDER, list_tree
from facelab.data.scan import fingerprint
from facelab.params import parse_params

SPLIT = {"train": 0.5, "val": 0.25, "test": 0.25}


def photo(path, seed: int, size: int = 24) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(np.random.default_rng(seed).integers(0, 256, (size, size, 3), dtype=np.uint8)).save(path)


def linked_tree(tmp_path):
    """photos/other -> elsewhere/other (a linked class folder), target/ with a nested 2019/ folder, a linked file,
    a linked sub-folder, a dangling link, a link loop, hidden files and folders."""
    elsewhere, root = tmp_path / "elsewhere", tmp_path / "photos"
    for i in range(6):
        photo(elsewhere / "other" / f"o{i}.png", i)
        photo(root / "target" / f"t{i}.png", 100 + i)
    for i in range(3):
        photo(root / "target" / "2019" / "summer" / f"s{i}.png", 200 + i)
        photo(elsewhere / "extra" / f"e{i}.png", 300 + i)
    (root / "other").symlink_to(elsewhere / "other", target_is_directory=True)
    (root / "target" / "linked.png").symlink_to(elsewhere / "extra" / "e0.png")
    (root / "target" / "more").symlink_to(elsewhere / "extra", target_is_directory=True)
    (root / "target" / "gone.png").symlink_to(tmp_path / "nowhere.png")
    (root / "target" / "2019" / "again").symlink_to(root / "target", target_is_directory=True)
    photo(root / "target" / ".thumbnails" / "t.png", 400)
    (root / "target" / ".DS_Store").write_bytes(b"\0\0\0\1Bud1")
    return root


def folder_data(raw, root, **overrides):
    raw["data"]["face"].update(source="folder", path=str(root), split=SPLIT, max_bad_fraction=0.2, **overrides)
    return parse_params(raw).data["face"]


def run(tmp_path, data) -> dict:
    prepare.prepare_task("face", data, 0, tmp_path / "out", tmp_path / "data.json")
    return json.loads((tmp_path / "data.json").read_text())


def test_the_lister_follows_links_recurses_skips_hidden_names_and_stops_at_a_loop(tmp_path):
    root = linked_tree(tmp_path)
    found = list_tree(root / "target")
    names = [p.relative_to(root).as_posix() for p in found.files]
    assert names == ["target/2019/summer/s0.png", "target/2019/summer/s1.png", "target/2019/summer/s2.png",
                     "target/gone.png", "target/linked.png", "target/more/e0.png", "target/more/e1.png",
                     "target/more/e2.png"] + [f"target/t{i}.png" for i in range(6)]
    [loop] = found.problems
    assert (loop.path, loop.reason) == (root / "target" / "2019" / "again", listing.LINK_LOOP)
    assert loop.detail == (f"'{root / 'target' / '2019' / 'again'}' leads back to '{os.path.realpath(root / 'target')}'"
                           f", a folder above it; its files are listed once, there")
    assert [p.name for p in list_tree(root / "other").files] == [f"o{i}.png" for i in range(6)]


def test_scan_lists_exactly_the_files_prepare_reads_and_prepare_gives_each_its_fate(tiny_raw, tmp_path):
    root = linked_tree(tmp_path)
    photo(root / "unrelated" / "u.png", 500)  # not a class: neither read nor fingerprinted
    data = folder_data(tiny_raw, root)
    scanned = fingerprint("face", data)
    report = run(tmp_path, data)
    assert len(scanned["files"]) == report["total"]["found"] == 21  # 6 + 14 files + the loop
    assert report["duplicates"] == [{"class": "target", "kept": "target/linked.png", "removed": ["target/more/e0.png"]}]
    assert report["total"]["used"] == 18 and report["not_used"] == {"unrelated": 1}
    assert scanned["others"] == ["unrelated"]
    skipped = {s["file"]: (s["reason"], s["detail"]) for s in report["skipped"]}
    assert skipped == {
        "target/gone.png": (BROKEN_LINK, f"'{root / 'target' / 'gone.png'}' links to '{tmp_path / 'nowhere.png'}', "
                                         f"which does not exist; fix or remove the link"),
        "target/2019/again": (LINK_LOOP, f"'{root / 'target' / '2019' / 'again'}' leads back to "
                                         f"'{os.path.realpath(root / 'target')}', a folder above it; its files are "
                                         f"listed once, there")}
    assert not any(".DS_Store" in row[0] or ".thumbnails" in row[0] for row in scanned["files"])
    rows = {row[0]: row for row in scanned["files"]}
    assert rows["target/gone.png"][1:] == ["unreadable", "No such file or directory"]
    assert rows["target/2019/again"][1] == LINK_LOOP


def test_a_replaced_photo_with_the_same_size_and_mtime_changes_the_fingerprint(tiny_raw, tmp_path):
    root = tmp_path / "photos"
    for k, name in enumerate(("other", "target")):
        for i in range(4):
            photo(root / name / f"{i}.png", 10 * k + i)
    data = folder_data(tiny_raw, root)
    path = root / "target" / "0.png"
    before, stat = fingerprint("face", data), path.stat()
    photo(tmp_path / "new.png", 999)
    assert (tmp_path / "new.png").stat().st_size == stat.st_size  # same-size noise PNG
    os.replace(tmp_path / "new.png", path)
    os.utime(path, ns=(stat.st_atime_ns, stat.st_mtime_ns))  # the mtime set back, as a copy tool keeping times does
    after = fingerprint("face", data)
    changed = [(a, b) for a, b in zip(before["files"], after["files"]) if a != b]
    assert [a[0] for a, _ in changed] == ["target/0.png"]
    (a, b), = changed
    assert a[1:3] == b[1:3] and (a[3], a[4]) != (b[3], b[4])  # size and mtime equal; inode and ctime tell


def test_an_unreadable_folder_beside_the_class_folders_is_a_note_not_an_error(tiny_raw, tmp_path, monkeypatch):
    root = tmp_path / "photos"
    for k, name in enumerate(("other", "target")):
        for i in range(4):
            photo(root / name / f"{i}.png", 10 * k + i)
    (root / "lost+found").mkdir()
    real_scandir = os.scandir

    def scandir(path):  # chmod 0 does not stop root, who runs CI
        if str(path).endswith("lost+found"):
            raise PermissionError(13, "Permission denied", str(path))
        return real_scandir(path)
    monkeypatch.setattr(listing.os, "scandir", scandir)
    data = folder_data(tiny_raw, root)
    report = run(tmp_path, data)
    assert report["total"]["used"] == 8 and report["skipped"] == []
    assert report["warnings"] == [f"folder '{root / 'lost+found'}' cannot be read (Permission denied: "
                                  f"'{root / 'lost+found'}'); it is not one of the classes ['other', 'target'], "
                                  f"so prepare goes on without it"]
    assert fingerprint("face", data)["others"] == ["lost+found"]
    assert list_tree(root / "lost+found").problems[0].reason == UNREADABLE_FOLDER


def test_a_nested_class_folder_is_read_and_an_empty_one_says_so(tiny_raw, tmp_path):
    from facelab.errors import DataError
    root = tmp_path / "photos"
    for i in range(4):
        photo(root / "other" / f"{i}.png", i)
        photo(root / "target" / "2020" / f"{i}.png", 10 + i)
    assert run(tmp_path, folder_data(tiny_raw, root))["classes"]["target"]["used"] == 4
    (root / "c" / "2019").mkdir(parents=True)
    with pytest.raises(DataError, match=r"^'.*photos/c' holds no files, only empty folder\(s\) 2019 \(files per "
                                        r"class: other: 4, target: 4, c: 0\)"):
        run(tmp_path, folder_data(tiny_raw, root, classes=["other", "target", "c"]))


def test_a_class_folder_written_decomposed_is_the_class_named_composed(tmp_path):
    """macOS writes 'café' as NFD; params.yaml usually holds NFC: prepare and scan read that folder as the class."""
    import unicodedata

    from PIL import Image

    from facelab.data.scan import fingerprint
    from facelab.data.sources import folder_images
    from facelab.params import parse_params
    from tests.conftest import tiny_raw_params
    composed, decomposed = unicodedata.normalize("NFC", "café"), unicodedata.normalize("NFD", "café")
    for folder, n in ((decomposed, 3), ("tea", 2)):
        (tmp_path / folder).mkdir()
        for i in range(n):
            Image.new("RGB", (40, 40), (i * 40, 90, 20)).save(tmp_path / folder / f"{i}.png")
    images = folder_images(tmp_path, (composed, "tea"), 32)
    assert sorted(images.labels.tolist()) == [0, 0, 0, 1, 1] and not images.warnings
    raw = tiny_raw_params()
    raw["data"]["face"].update(source="folder", path=str(tmp_path), classes=[composed, "tea"])
    found = fingerprint("face", parse_params(raw).data["face"])
    assert len(found["files"]) == 5 and found["others"] == []
