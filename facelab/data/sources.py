"""Data sources for prepare: the built-in generated faces and a user's image-folder tree, decoded to uint8 RGB."""
from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Optional

import numpy as np

from facelab.data import faces
from facelab.errors import DataError
from facelab.data.images import Entry, Images, display_name, pixel_digest, read_files
from facelab.params import DataParams
from facelab.data.pixels import PixelStore



def generated_images(task: str, data: DataParams, seed: int, scratch: Optional[Path] = None) -> Images:
    """The task's generated faces, drawn one at a time. scratch: a file for the pixels (see facelab.data.pixels.PixelStore);
    None keeps them in memory."""
    gen = data.generated
    if task == "face":
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


def user_path(path: str, where: str) -> Path:
    """data.<task>.path with '~' expanded; a home that cannot be found is an error naming the key."""
    try:
        return Path(path).expanduser()
    except RuntimeError as error:  # Path.expanduser: '~nosuchuser' or no HOME
        raise DataError(f"{where}: cannot expand '{path}' ({error}); write the full path instead") from error


def folder_images(root: Path, classes: tuple[str, ...], img_size: int, scratch: Optional[Path] = None,
                  faces: str = "none") -> Images:
    """Read <root>/<class>/* for each class named in params, in sorted file order, one file at a time.

    Every file in a class folder is tried; those that are not usable images are listed in `skipped`.
    Sub-folders that are not classes are counted in `not_used` and named in `warnings`."""
    found, others, notes = scan_folders(root, classes)
    entries = [Entry(path, label, display_name(path.relative_to(root)))
               for label, name in enumerate(classes) for path in found[name]]
    notes += [f"folder '{root / name}' ({count} files) is not one of the classes {list(classes)}; "
              f"its files are not used" for name, count in others.items()]
    images = read_files(entries, classes, img_size, scratch=scratch, faces=faces)
    return dataclasses.replace(images, not_used=others, warnings=tuple(notes))


def scan_folders(root: Path, wanted: tuple[str, ...]) -> tuple[dict[str, list[Path]], dict[str, int], list[str]]:
    """The files in each wanted sub-folder of root, the other sub-folders with their file counts, and notes
    on what is not read (loose files, nested folders). A wanted folder that is missing or empty is an error."""
    if root.exists() and not root.is_dir():
        raise DataError(f"image folder '{root}' is a file, not a folder; set data.<task>.path to a folder "
                        f"holding one sub-folder per class {list(wanted)}")
    if not root.is_dir():
        raise DataError(f"image folder '{root}' does not exist; set data.<task>.path to a folder "
                        f"holding one sub-folder per class {list(wanted)}")
    found, nested_in, notes = {}, {}, []
    for name in wanted:
        if (root / name).is_dir():
            found[name], nested_in[name] = list_folder(root / name)
            notes += [f"'{folder}' is a folder inside a class folder; only the files directly in "
                      f"'{root / name}' are read" for folder in nested_in[name]]
    loose, subfolders = list_folder(root)
    others = {p.name: len(list_folder(p)[0]) for p in subfolders if p.name not in wanted}
    if loose:
        notes.append(f"{len(loose)} file(s) directly in '{root}' are in no class folder and are not used: "
                     + ", ".join(p.name for p in loose[:5]) + (" ..." if len(loose) > 5 else ""))
    check_class_folders(root, wanted, found, others, nested_in)
    return found, others, notes


def list_folder(folder: Path) -> tuple[list[Path], list[Path]]:
    """The files and the sub-folders directly in folder, each sorted by name."""
    try:
        entries = sorted(folder.iterdir())
    except PermissionError as error:
        raise DataError(f"folder '{folder}' cannot be listed (permission denied); give this user read and "
                        f"execute permission on it (chmod u+rx '{folder}') or move it out of data.<task>.path") from error
    return [p for p in entries if not p.is_dir()], [p for p in entries if p.is_dir()]


def check_class_folders(root: Path, wanted: tuple[str, ...], found: dict[str, list[Path]],
                        others: dict[str, int], nested_in: dict[str, list[Path]] | None = None) -> None:
    nested_in = nested_in or {}

    def why(name: str) -> str:
        if name not in found:
            return "is missing"
        if nested_in.get(name):
            folders = ", ".join(p.name for p in nested_in[name][:5])
            return f"holds no files, only folder(s) {folders} (images must be directly in the class folder)"
        return "is empty"
    bad = {name: why(name) for name in wanted if not found.get(name)}
    if not bad:
        return
    counts = ", ".join(f"{name}: {len(found.get(name, []))}" for name in wanted)
    problems = ", ".join(f"'{root / name}' {why}" for name, why in bad.items())
    elsewhere = ("; other folders there: " + ", ".join(f"{name}: {n}" for name, n in others.items())
                 if others else "")
    raise DataError(f"{problems} (files per class: {counts}{elsewhere}); each class in params needs a "
                    f"folder of images named exactly like the class")
