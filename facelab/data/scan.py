"""What a task's source holds, as a fingerprint DVC can compare: every file under its path with its size and modification time, so a changed photo folder makes prepare stale."""
from __future__ import annotations

import os
from pathlib import Path

from facelab.data.images import display_name
from facelab.data.sources import user_path
from facelab.params import DataParams


def source_root(task: str, data: DataParams) -> Path | None:
    """The file or folder prepare reads for this source; None for the generated faces (params say it all)."""
    if data.source == "generated":
        return None
    if data.source == "lfw":  # scikit-learn's data home, as fetch_lfw_people uses it
        from sklearn.datasets import get_data_home
        home = None if data.path is None else str(user_path(data.path, f"data.{task}.path"))
        return Path(get_data_home(home)) / "lfw_home"
    return user_path(data.path, f"data.{task}.path")


def fingerprint(task: str, data: DataParams) -> dict:
    """{"source", "path", "files": [[relative path, bytes, mtime ns], ...]} sorted by path. A missing path gives an
    empty list (prepare then says what is wrong); unreadable folders are listed as such, not raised."""
    root = source_root(task, data)
    found = {"source": data.source, "path": None if root is None else str(root), "files": []}
    if root is None or not root.exists():
        return found
    if root.is_file():
        stat = root.stat()
        found["files"] = [[root.name, stat.st_size, stat.st_mtime_ns]]
        return found
    for folder, _, names in os.walk(root, onerror=lambda error: found["files"].append(
            [display_name(Path(error.filename).relative_to(root)), "unreadable", str(error.strerror)])):
        for name in names:
            path = Path(folder) / name
            try:
                stat = path.stat()
                found["files"].append([display_name(path.relative_to(root)), stat.st_size, stat.st_mtime_ns])
            except OSError as error:
                found["files"].append([display_name(path.relative_to(root)), "unreadable", str(error.strerror)])
    found["files"].sort(key=lambda row: row[0])
    return found
