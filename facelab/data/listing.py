"""The one file lister of scan, prepare's folder sources, `facelab predict` and `facelab evaluate`: a folder in, its
files (at any depth, links followed, hidden names and NAS/OS system folders left out) and the folders it could not
read or did not read out."""
from __future__ import annotations

import errno
import os
import unicodedata
from dataclasses import dataclass, field
from pathlib import Path

# Why a folder under a listed folder gave no files; prepare lists these as skipped, scan fingerprints them.
LINK_LOOP, UNREADABLE_FOLDER = "link loop", "unreadable folder"
SYSTEM_FOLDER = "NAS or OS folder"  # why a folder was not read at all: listed as ignored, never counted as bad

# Folders that NAS boxes and operating systems write among photos, by name (case aside): never photos of their own,
# so never read. Synology's @eaDir holds a SYNOPHOTO_THUMB_*.jpg set per photo, which would train on thumbnails of
# images already used (the same photo in two splits).
SYSTEM_FOLDERS = {
    "@eadir": "a Synology NAS's thumbnails and metadata (SYNOPHOTO_THUMB_*.jpg)",
    "#recycle": "a Synology NAS's recycle bin",
    "@recycle": "a QNAP NAS's recycle bin",
    ".@__thumb": "a QNAP NAS's thumbnails",
    ".trashes": "macOS's trash on a removable disk",
    "$recycle.bin": "Windows' recycle bin",
    "system volume information": "Windows' system data on a disk",
}


@dataclass(frozen=True)
class Problem:
    """A folder that was not listed: `path` as reached under the root, `reason` one of the above, `detail` why."""
    path: Path
    reason: str
    detail: str


@dataclass(frozen=True)
class Listing:
    """Every file under a folder sorted by path (links to files included, dangling ones too: the decoder says
    what is wrong with them), the folders that could not be listed, the sub-folders walked into, and the NAS/OS
    system folders not read (SYSTEM_FOLDER problems)."""
    files: list[Path] = field(default_factory=list)
    problems: list[Problem] = field(default_factory=list)
    folders: list[Path] = field(default_factory=list)
    ignored: list[Problem] = field(default_factory=list)


def hidden(name: str) -> bool:
    """'.DS_Store', '._photo.jpg' (macOS), '.thumbnails', '.git': never photos, and never listed."""
    return name.startswith(".")


def system_folder(path: Path) -> Problem | None:
    """The SYSTEM_FOLDER problem of a folder named like one of SYSTEM_FOLDERS ('@eaDir', '$RECYCLE.BIN'), else None."""
    what = SYSTEM_FOLDERS.get(path.name.casefold())
    if what is None:
        return None
    return Problem(path, SYSTEM_FOLDER, f"'{path.name}' holds {what}, never photos of its own; not read")


def system_folder_in(path: Path) -> Problem | None:
    """The SYSTEM_FOLDER problem of the first folder in path as written ('photos/@eaDir/a.jpg/SYNOPHOTO_THUMB_M.jpg')
    that is a NAS/OS system folder, path itself included; None when there is none."""
    for folder in reversed((path, *path.parents)):
        found = system_folder(folder)
        if found is not None:
            return found
    return None


def list_tree(folder: Path) -> Listing:
    """Every visible file under folder, following links to files and folders, as torchvision's ImageFolder
    recurses (os.walk(followlinks=True)), but with loop protection: a folder that is its own ancestor once links
    are resolved (same st_dev and st_ino) is a LINK_LOOP problem instead of an endless walk. NAS and OS system
    folders (SYSTEM_FOLDERS) are not read, the folder itself included, and are listed as `ignored`."""
    found = Listing()
    ignored = system_folder(Path(folder))
    if ignored is not None:
        found.ignored.append(ignored)
        return found
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
        if error.errno == errno.ELOOP:  # a link that leads back to itself (loop -> loop, a -> b -> a)
            found.problems.append(Problem(folder, LINK_LOOP, f"'{folder}' is a link that leads back to itself; "
                                                             f"replace it with the folder it should point to"))
        else:
            found.problems.append(Problem(folder, UNREADABLE_FOLDER, f"{error.strerror or error}: '{folder}'"))
        return
    for entry in entries:
        path = Path(entry.path)
        ignored = system_folder(path)
        if ignored is not None and is_folder(entry):  # before hidden(): '.Trashes' is listed as not read too
            found.ignored.append(ignored)
        elif hidden(entry.name):
            continue
        elif is_folder(entry):
            found.folders.append(path)
            walk(path, ancestors | {identity}, found)
        else:
            found.files.append(path)


def why_missing(path: Path) -> str:
    """Why a path is not there, to follow its name in a message: a loop of links, a link to nothing, or nothing."""
    if os.path.islink(path):
        try:
            os.stat(path)
        except OSError as error:
            if error.errno == errno.ELOOP:
                return "is a link loop (a link that leads back to itself)"
            return f"is a link to '{os.readlink(path)}', which does not exist"
    return "does not exist"


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
