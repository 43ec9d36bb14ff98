"""The one file lister of scan, prepare's folder sources, `facelab predict` and `facelab evaluate`: a folder in, its
files (at any depth, links followed, hidden names left out) and the folders it could not read out."""
from __future__ import annotations

import os
import unicodedata
from dataclasses import dataclass, field
from pathlib import Path

# Why a folder under a listed folder gave no files; prepare lists these as skipped, scan fingerprints them.
LINK_LOOP, UNREADABLE_FOLDER = "link loop", "unreadable folder"


@dataclass(frozen=True)
class Problem:
    """A folder that was not listed: `path` as reached under the root, `reason` one of the above, `detail` why."""
    path: Path
    reason: str
    detail: str


@dataclass(frozen=True)
class Listing:
    """Every file under a folder sorted by path (links to files included, dangling ones too: the decoder says
    what is wrong with them), the folders that could not be listed, and the sub-folders walked into."""
    files: list[Path] = field(default_factory=list)
    problems: list[Problem] = field(default_factory=list)
    folders: list[Path] = field(default_factory=list)


def hidden(name: str) -> bool:
    """'.DS_Store', '._photo.jpg' (macOS), '.thumbnails', '.git': never photos, and never listed."""
    return name.startswith(".")


def list_tree(folder: Path) -> Listing:
    """Every visible file under folder, following links to files and folders, as torchvision's ImageFolder
    recurses (os.walk(followlinks=True)), but with loop protection: a folder that is its own ancestor once links
    are resolved (same st_dev and st_ino) is a LINK_LOOP problem instead of an endless walk."""
    found = Listing()
    walk(Path(folder), frozenset(), found)
    found.files.sort()
    return found


def walk(folder: Path, ancestors: frozenset, found: Listing) -> None:
    try:
        stat = os.stat(folder)
        identity = (stat.st_dev, stat.st_ino)
        if identity in ancestors:
            found.problems.append(Problem(folder, LINK_LOOP, f"'{folder}' leads back to '{os.path.realpath(folder)}',"
                                                             f" a folder above it; its files are listed once, there"))
            return
        with os.scandir(folder) as scan:
            entries = sorted(scan, key=lambda entry: entry.name)
    except OSError as error:
        found.problems.append(Problem(folder, UNREADABLE_FOLDER, f"{error.strerror or error}: '{folder}'"))
        return
    for entry in entries:
        if hidden(entry.name):
            continue
        path = Path(entry.path)
        if is_folder(entry):
            found.folders.append(path)
            walk(path, ancestors | {identity}, found)
        else:
            found.files.append(path)


def same_name(a: str, b: str) -> bool:
    """Names equal after Unicode normalisation: macOS writes 'café' decomposed (NFD), params.yaml holds it
    composed (NFC); both are the same folder to the user."""
    return unicodedata.normalize("NFC", a) == unicodedata.normalize("NFC", b)


def class_folder(root: Path, name: str) -> Path:
    """root/name, or the sub-folder of root whose name equals `name` after Unicode normalisation."""
    if (root / name).is_dir():
        return root / name
    try:
        with os.scandir(root) as scan:
            return next((Path(entry.path) for entry in scan if same_name(entry.name, name) and is_folder(entry)),
                        root / name)
    except OSError:
        return root / name


def is_folder(entry: os.DirEntry) -> bool:
    """A folder or a link to one; a dangling link or a loop of links is not (is_dir then says False)."""
    try:
        return entry.is_dir()
    except OSError:
        return False


def children(folder: Path) -> tuple[list[Path], list[Path]]:
    """The visible files and sub-folders directly in folder, each sorted; raises OSError when it cannot be read."""
    with os.scandir(folder) as scan:
        entries = sorted(scan, key=lambda entry: entry.name)
    visible = [e for e in entries if not hidden(e.name)]
    return ([Path(e.path) for e in visible if not is_folder(e)], [Path(e.path) for e in visible if is_folder(e)])
