"""Data sources for prepare: the built-in generated faces and a user's image-folder tree, decoded to uint8 RGB."""
from __future__ import annotations

import dataclasses
import os
from pathlib import Path

import numpy as np

from facelab.data import faces
from facelab.data.images import Entry, Images, Skipped, display_name, pixel_digest, read_files
from facelab.data.listing import Listing, children, class_folder, list_tree, same_name, system_folder, why_missing
from facelab.data.pixels import PixelStore
from facelab.errors import DataError
from facelab.params import DataParams


def generated_images(task: str, data: DataParams, seed: int, scratch: Path | None = None) -> Images:
    """The task's generated faces, drawn one at a time. scratch: a file for the pixels (see
    facelab.data.pixels.PixelStore); None keeps them in memory."""
    gen = data.generated
    assert gen is not None  # check_data: a generated source has its generated block
    if task == "face":
        assert gen.target_fraction is not None  # check_data: the face task has its target's share
        labels, stream = faces.stream_face_identity(
            gen.n_images, gen.target_fraction, gen.n_identities, data.img_size, seed,
            difficulty=gen.difficulty)
    else:
        labels, stream = faces.stream_emotions(
            gen.n_images, gen.n_identities, data.img_size, seed, difficulty=gen.difficulty)
    digests = []
    with PixelStore(len(labels), data.img_size, scratch) as store:
        for image in stream:
            store.add(image)
            digests.append(pixel_digest(image))
        pixels = store.pixels()
    files = [f"generated/{task}/{i:05d}.png" for i in range(len(labels))]
    return Images(pixels, labels.astype(np.int64), files, digests)


def source_root(task: str, data: DataParams) -> Path | None:
    """The file or folder prepare reads for the task's source, which scan fingerprints: the one place a source's
    path is resolved. For LFW, scikit-learn's cache folder (lfw_home). None for the generated faces: the params
    say it all."""
    if data.source == "generated":
        return None
    if data.source == "lfw":  # scikit-learn's data home, as fetch_lfw_people uses it
        from sklearn.datasets import get_data_home  # here, not at the top: scan imports this module and needs no more
        home = None if data.path is None else str(user_path(data.path, task))
        return Path(get_data_home(home)) / "lfw_home"
    assert data.path is not None  # check_data: a folder or fer2013 source has its path
    return user_path(data.path, task)


def user_path(path: str, task: str) -> Path:
    """data.<task>.path with '~' expanded, a relative one taken from the repository root: the DVC_ROOT that DVC
    gives every stage. `dvc exp run --temp` and `--queue` run the stages in a copy under .dvc/tmp/exps/ and set
    DVC_ROOT to the original repository (facelab.paths.wandb_dir), so '../photos' names the same folder in an
    experiment as in `dvc repro`. Outside DVC, the working directory. A home that cannot be found is an error
    naming the key."""
    try:
        expanded = Path(path).expanduser()
    except RuntimeError as error:  # Path.expanduser: '~nosuchuser' or no HOME
        raise DataError(f"data.{task}.path: cannot expand '{path}' ({error}); write the full path instead") from error
    root = os.environ.get("DVC_ROOT")
    return expanded if expanded.is_absolute() or not root else Path(root) / expanded


def folder_images(root: Path, classes: tuple[str, ...], img_size: int, scratch: Path | None = None,
                  faces: str = "none", min_side: int | None = None, fallback: str = "skip") -> Images:
    """Read every file under <root>/<class>/ (at any depth, links followed) for each class named in params, in
    sorted path order, one file at a time.

    Each file is used, ignored (not an image file) or skipped with its reason; folders under a class folder that
    cannot be listed (a link loop, no permission) are skipped rows too, and NAS/OS system folders (@eaDir) ignored
    rows. Sub-folders of root that are not classes are counted in `not_used` and named in `warnings`."""
    found, others, notes = list_class_folders(root, classes)
    entries = [Entry(path, label, display_name(path.relative_to(root)))
               for label, name in enumerate(classes) for path in found[name].files]
    notes += [f"folder '{root / name}' ({count} files) is not one of the classes {list(classes)}; "
              f"its files are not used" for name, count in others.items()]
    images = read_files(entries, classes, img_size, scratch=scratch, faces=faces, min_side=min_side, fallback=fallback)
    folders, ignored = folder_rows(found, root, {name: name for name in classes})
    return dataclasses.replace(images, skipped=folders + images.skipped, ignored=ignored + images.ignored,
                               not_used=others, warnings=images.warnings + tuple(notes))


def folder_rows(found: dict[str, Listing], root: Path,
                classes: dict[str, str]) -> tuple[tuple[Skipped, ...], tuple[Skipped, ...]]:
    """The folders under each listed folder that gave no files, as data.json rows named relative to root and
    labelled with classes[folder]: skipped (a link loop, no permission) and ignored (NAS/OS system folders)."""
    def row(problem, name, counted=True):
        return Skipped(display_name(problem.path.relative_to(root)), classes[name], problem.reason, problem.detail,
                       counted)
    return (tuple(row(problem, name) for name in classes for problem in found[name].problems),
            tuple(row(problem, name, counted=False) for name in classes for problem in found[name].ignored))


def list_class_folders(root: Path, wanted: tuple[str, ...]) -> tuple[dict[str, Listing], dict[str, int], list[str]]:
    """The listing of each wanted sub-folder of root, the other sub-folders with their file counts, and notes on
    what is not read (loose files, other folders, unreadable ones). Only the wanted folders must be readable: an
    unreadable folder beside them (lost+found) is a note. A wanted folder that is missing, empty or unreadable
    is an error."""
    if root.exists() and not root.is_dir():
        raise DataError(f"image folder '{root}' is a file, not a folder; set data.<task>.path to a folder "
                        f"holding one sub-folder per class {list(wanted)}")
    if not root.is_dir():
        raise DataError(f"image folder '{root}' {why_missing(root)}; set data.<task>.path to a folder "
                        f"holding one sub-folder per class {list(wanted)}")
    loose, subfolders = list_folder(root)
    found = {name: class_listing(class_folder(root, name)) for name in wanted if class_folder(root, name).is_dir()}
    others, notes = {}, []
    for folder in subfolders:
        if any(same_name(folder.name, name) for name in wanted):
            continue
        ignored = system_folder(folder)
        if ignored is not None:
            notes.append(f"folder '{folder}': {ignored.detail}")
            continue
        listing = list_tree(folder)
        if listing.problems and listing.problems[0].path == folder:
            notes.append(f"folder '{folder}' cannot be read ({listing.problems[0].detail}); it is not one of the "
                         f"classes {list(wanted)}, so prepare goes on without it")
        else:
            others[folder.name] = len(listing.files)
    if loose:
        notes.append(f"{len(loose)} file(s) directly in '{root}' are in no class folder and are not used: "
                     + ", ".join(p.name for p in loose[:5]) + (" ..." if len(loose) > 5 else ""))
    check_class_folders(root, wanted, found, others)
    return found, others, notes


def class_listing(folder: Path) -> Listing:
    """Every file under a class folder; a class folder that cannot be read at all is an error naming the fix."""
    listing = list_tree(folder)
    if listing.problems and listing.problems[0].path == folder:
        raise DataError(f"folder '{folder}' cannot be listed ({listing.problems[0].detail}); give this user read "
                        f"and execute permission on it (chmod u+rx '{folder}') or move it out of data.<task>.path")
    return listing


def list_folder(folder: Path) -> tuple[list[Path], list[Path]]:
    """The visible files and the sub-folders directly in folder, each sorted by name."""
    try:
        return children(folder)
    except PermissionError as error:
        raise DataError(f"folder '{folder}' cannot be listed (permission denied); give this user read and "
                        f"execute permission on it (chmod u+rx '{folder}') or move it out of "
                        f"data.<task>.path") from error


def check_class_folders(root: Path, wanted: tuple[str, ...], found: dict[str, Listing],
                        others: dict[str, int]) -> None:
    def why(name: str) -> str:
        if name not in found:
            return "is missing" if why_missing(root / name) == "does not exist" else why_missing(root / name)
        if found[name].folders:
            folders = ", ".join(p.name for p in found[name].folders[:5])
            return f"holds no files, only empty folder(s) {folders}"
        return "is empty"
    bad = {name: why(name) for name in wanted if name not in found or not found[name].files}
    if not bad:
        return
    counts = ", ".join(f"{name}: {len(found[name].files) if name in found else 0}" for name in wanted)
    problems = ", ".join(f"'{root / name}' {why}" for name, why in bad.items())
    elsewhere = ("; other folders there: " + ", ".join(f"{name}: {n}" for name, n in others.items())
                 if others else "")
    raise DataError(f"{problems} (files per class: {counts}{elsewhere}); each class in params needs a "
                    f"folder of images named exactly like the class")
