"""Public data sources for prepare: LFW through scikit-learn's cache, and FER2013 as its CSV or image-folder release."""
from __future__ import annotations

import dataclasses
import difflib
from collections import Counter
from pathlib import Path

import numpy as np
import pandas as pd
from PIL import Image
from sklearn.datasets import fetch_lfw_people

from facelab.data.images import BAD_ROW, BadImage, Entry, Images, Skipped, display_name, read_files, square_pixels
from facelab.data.pixels import PixelStore
from facelab.data.sources import folder_rows, list_class_folders, list_folder
from facelab.errors import DataError
from facelab.params import FER2013_LABELS, DataParams

# scikit-learn's default slice_ for fetch_lfw_people as a PIL box (left, top, right, bottom):
# the face of the 250x250 funneled image without most of the background.
LFW_FACE_BOX = (78, 70, 172, 195)
LFW_FILES = ("pairsDevTrain.txt", "pairsDevTest.txt", "pairs.txt", "lfw_funneled/")
# More pictures than anyone in LFW has (George_W_Bush: 530); see lfw_folder.
NOBODY = 10**9
FER2013_SIDE = 48
FER2013_TEST_USAGE = ("PublicTest", "PrivateTest")  # the CSV's test rows; the folder release's test/ holds both


def lfw_images(cache: Path, data: DataParams, seed: int, scratch: Path | None = None) -> Images:
    """classes[1]: every image of data.lfw.target; classes[0]: data.lfw.n_other images of everybody else, seeded.
    cache: scikit-learn's lfw_home folder (sources.source_root)."""
    assert data.lfw is not None  # check_data: an lfw source has its lfw block
    folder = lfw_folder(cache, data.lfw.download)
    people = [p.name for p in list_folder(folder)[1]]
    target = data.lfw.target
    if target not in people:
        close = difflib.get_close_matches(target, people, n=3)
        raise DataError(f"data.<task>.lfw.target: '{target}' is not a person in '{folder}' "
                        f"({len(people)} people); closest names: {close or 'none'}")
    others = [p for name in people if name != target for p in list_folder(folder / name)[0]]
    if data.lfw.n_other > len(others):
        raise DataError(f"data.<task>.lfw.n_other: {data.lfw.n_other} is more than the {len(others)} images "
                        f"of other people in '{folder}'; lower it")
    chosen = np.sort(np.random.default_rng(seed).choice(len(others), data.lfw.n_other, replace=False))
    entries = ([Entry(others[i], 0, display_name(others[i].relative_to(folder))) for i in chosen]
               + [Entry(p, 1, display_name(p.relative_to(folder))) for p in list_folder(folder / target)[0]])
    return read_files(entries, data.classes, data.img_size, box=LFW_FACE_BOX, scratch=scratch, faces=data.faces,
                      min_side=data.min_side, fallback=data.faces_fallback)


def lfw_folder(cache: Path, download: bool) -> Path:
    """<cache>/lfw_funneled, downloaded by scikit-learn first if it is missing and download is true.
    cache: <data_home>/lfw_home, where scikit-learn keeps LFW."""
    try:
        # fetch_lfw_people checks the cache (downloading what is missing) before it reads any face;
        # asking only for people with more pictures than anyone has stops it there with a ValueError,
        # instead of decoding all 13,233 images into floats that prepare would not use.
        fetch_lfw_people(data_home=str(cache.parent), download_if_missing=download, min_faces_per_person=NOBODY)
    except OSError as error:
        how = ("downloading it failed" if download else
               "data.<task>.lfw.download is false")
        raise DataError(f"LFW is not in the cache folder '{cache}' ({error}) and {how}; run prepare once on a "
                        f"machine with network and lfw.download: true, or copy {', '.join(LFW_FILES)} of an "
                        f"LFW download into '{cache}'") from error
    except ValueError as error:
        if "too restrictive" not in str(error):
            raise
    return cache / "lfw_funneled"


def fer2013_images(path: Path, data: DataParams, scratch: Path | None = None) -> Images:
    """FER2013 from `path` (data.<task>.path: the CSV or the image-folder release) with its labels mapped to classes
    by data.fer2013; images of unmapped labels are counted, not used.

    scratch: a file for the pixels (see facelab.data.pixels.PixelStore); None keeps them in memory."""
    assert data.fer2013 is not None  # check_data: a fer2013 source has its fer2013 block
    label_map = {label: data.classes.index(name)
                 for label, name in dataclasses.asdict(data.fer2013).items() if name is not None}
    if path.is_file():
        return fer2013_csv_images(path, label_map, data.classes, data.img_size, scratch)
    if path.is_dir():
        return fer2013_folder_images(path, label_map, data.classes, data.img_size, scratch, data.faces, data.min_side,
                                     data.faces_fallback)
    raise DataError(f"FER2013 release '{path}' does not exist; set data.<task>.path to fer2013.csv "
                    f"(columns emotion, pixels, Usage) or to the image-folder release holding train/ and test/")


def fer2013_folder_images(root: Path, label_map: dict[str, int], classes: tuple[str, ...], img_size: int,
                          scratch: Path | None = None, faces: str = "none", min_side: int | None = None,
                          fallback: str = "skip") -> Images:
    """<root>/train/<label>/* and, when present, <root>/test/<label>/* (then the test split)."""
    parts = [part for part in ("train", "test") if (root / part).is_dir()]
    if "train" not in parts:
        raise DataError(f"'{root}' is not a FER2013 image-folder release: it has no train/ folder "
                        f"(it holds {sorted(p.name for p in root.iterdir())}); point data.<task>.path at "
                        f"the folder that holds train/ and test/")
    entries, not_used, notes = [], {}, []
    folders: tuple[Skipped, ...] = ()  # folders under a label folder that gave no files: skipped, ignored
    ignored: tuple[Skipped, ...] = ()
    for part in parts:
        found, others, part_notes = list_class_folders(root / part, tuple(label_map))
        notes += part_notes + [f"folder '{root / part / name}' is not a FER2013 label {list(FER2013_LABELS)}; "
                               f"its files are not used" for name in others if name not in FER2013_LABELS]
        not_used.update({f"{part}/{name}": count for name, count in others.items()})
        entries += [Entry(path, label_map[name], display_name(path.relative_to(root)), part == "test")
                    for name in label_map for path in found[name].files]
        part_folders, part_ignored = folder_rows(found, root, {name: classes[label_map[name]] for name in label_map})
        folders, ignored = folders + part_folders, ignored + part_ignored
    notes += [f"'{p}' is neither train/ nor test/ of the release; not used"
              for p in list_folder(root)[1] if p.name not in ("train", "test")]
    images = read_files(entries, classes, img_size, fixed_test="test" in parts, scratch=scratch, faces=faces,
                        min_side=min_side, fallback=fallback)
    return dataclasses.replace(images, skipped=folders + images.skipped, ignored=ignored + images.ignored,
                               not_used=not_used, warnings=images.warnings + tuple(notes))


def fer2013_csv_images(path: Path, label_map: dict[str, int], classes: tuple[str, ...], img_size: int,
                       scratch: Path | None = None) -> Images:
    """Rows of fer2013.csv: emotion (0-6), pixels (48*48 values 0-255), Usage (Training | PublicTest | PrivateTest)."""
    table = read_fer2013_csv(path)
    fixed_test = "Usage" in table.columns
    labels, files, digests, test, skipped = [], [], [], [], []
    not_used: Counter[str] = Counter()  # rows per FER2013 label that params map to no class
    with PixelStore(len(table), img_size, scratch) as store:
        for row in table.itertuples():
            label, name = FER2013_LABELS[row.emotion], f"{path.name}:{row.Index + 2}"  # line 1 is the header
            if label not in label_map:
                not_used[label] += 1
                continue
            try:
                square, digest = square_pixels(row_image(row.pixels), img_size)
            except BadImage as bad:
                skipped.append(Skipped(name, classes[label_map[label]], bad.reason, bad.detail))
                continue
            store.add(square)
            labels.append(label_map[label])
            files.append(name)
            digests.append(digest)
            test.append(fixed_test and row.Usage in FER2013_TEST_USAGE)
        pixels = store.pixels()
    return Images(pixels, np.array(labels, np.int64), files, digests,
                  np.array(test, bool) if fixed_test else None, tuple(skipped), dict(not_used))


def read_fer2013_csv(path: Path) -> pd.DataFrame:
    """The CSV with its columns checked; a wrong emotion or Usage value means this is not the FER2013 CSV."""
    table = pd.read_csv(path, dtype=str, keep_default_na=False)
    table.columns = table.columns.str.strip()  # Kaggle's icml_face_data.csv spells them ' Usage', ' pixels'
    missing = {"emotion", "pixels"} - set(table.columns)
    if missing:
        raise DataError(f"'{path}' has no column(s) {sorted(missing)} (it has {list(table.columns)}); "
                        f"the FER2013 CSV has emotion, pixels and Usage")
    emotion = pd.to_numeric(table["emotion"], errors="coerce")
    bad = table.index[~emotion.isin(range(len(FER2013_LABELS)))]
    if len(bad):
        raise DataError(f"'{path}' line {bad[0] + 2}: emotion '{table['emotion'][bad[0]]}' is not 0-6 "
                        f"({', '.join(f'{i} {n}' for i, n in enumerate(FER2013_LABELS))})")
    table["emotion"] = emotion.astype(int)
    if "Usage" in table.columns:
        usages = ("Training",) + FER2013_TEST_USAGE
        odd = table.index[~table["Usage"].isin(usages)]
        if len(odd):
            raise DataError(f"'{path}' line {odd[0] + 2}: Usage '{table['Usage'][odd[0]]}' is not one of "
                            f"{list(usages)}")
    return table


def row_image(pixels: str) -> Image.Image:
    """A 48x48 greyscale image from the CSV's space-separated pixel values."""
    values = pixels.split()
    try:
        array = np.array(values, np.int64)
    except ValueError:
        array = None
    if array is None or array.size != FER2013_SIDE ** 2 or array.min() < 0 or array.max() > 255:
        raise BadImage(BAD_ROW, f"pixels must be {FER2013_SIDE ** 2} integers 0-255, got {len(values)} values "
                                f"starting {' '.join(values[:3])!r}")
    return Image.fromarray(array.astype(np.uint8).reshape(FER2013_SIDE, FER2013_SIDE))
