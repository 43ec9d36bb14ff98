"""What a task's source holds, as a fingerprint DVC can compare: every file prepare would read, with its size, times
and inode, so a changed photo folder makes prepare stale. Files are listed by prepare's own lister (listing.py)."""
from __future__ import annotations

from pathlib import Path
from typing import Any

from facelab.data.images import display_name
from facelab.data.listing import Listing, children, class_folder, list_tree, same_name
from facelab.data.sources import source_root
from facelab.files import write_json
from facelab.params import DataParams


def write_fingerprint(task: str, data: DataParams, out: Path) -> str:
    """The scan stage's work: the fingerprint of the task's source written to `out`; returns the line it prints."""
    found = fingerprint(task, data)
    write_json(out, found)
    return f"{found['source']}: {len(found['files'])} file(s) under {found['path']}"


def fingerprint(task: str, data: DataParams) -> dict:
    """{"source", "path", "files": [[relative path, bytes, mtime ns, inode, ctime ns], ...], "others"} sorted by
    path. The inode and ctime see a photo replaced by another of the same size with its mtime set back (a rename
    over it gives a new inode; any write or chmod a new ctime). A folder source lists only its class folders, as
    prepare reads them; `others` names the files and folders beside them. A missing path gives an empty list
    (prepare then says what is wrong); files and folders that cannot be read are rows with the reason, not raised."""
    root = source_root(task, data)
    found: dict[str, Any] = {"source": data.source, "path": None if root is None else str(root), "files": []}
    if root is None or not root.exists():
        return found
    if root.is_file():
        found["files"] = [file_row(root, root.parent)]
        return found
    if data.source != "folder":
        found["files"] = rows(list_tree(root), root)
        return found
    for name in data.classes:
        folder = class_folder(root, name)
        found["files"] += rows(list_tree(folder), root) if folder.is_dir() else []
    found["files"].sort(key=lambda row: row[0])
    found["others"] = other_folders(root, data.classes)
    return found


def rows(listing: Listing, root: Path) -> list[list]:
    """A row per file, per folder that could not be listed, and per NAS/OS folder not read (its name only: the
    thumbnails a NAS rewrites in @eaDir do not make prepare stale)."""
    return ([file_row(path, root) for path in listing.files] +
            [[display_name(p.path.relative_to(root)), p.reason, p.detail] for p in listing.problems + listing.ignored])


def file_row(path: Path, root: Path) -> list:
    name = display_name(path.relative_to(root))
    try:
        stat = path.stat()
    except OSError as error:  # a dangling link, a loop of links, no permission: prepare skips it with this reason
        return [name, "unreadable", str(error.strerror)]
    return [name, stat.st_size, stat.st_mtime_ns, stat.st_ino, stat.st_ctime_ns]


def other_folders(root: Path, classes: tuple[str, ...]) -> list[str]:
    """The visible names in root besides the class folders, which prepare's warnings name. Only names: a photo
    added to a folder prepare does not read must not rerun it (the file counts in data.json's not_used may then
    lag until the next run)."""
    try:
        loose, folders = children(root)
    except OSError as error:
        return [f"unreadable: {error.strerror}"]
    return [display_name(Path(p.name)) for p in loose + folders
            if not any(same_name(p.name, name) for name in classes)]
