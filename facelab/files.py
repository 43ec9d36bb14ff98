"""Atomic file output for every stage (write to a temporary name beside the target, then rename); plain folder names.

Temporary names are created by the writer itself (not mkstemp) so files get the usual umask permissions."""
from __future__ import annotations

import contextlib
import json
import os
import shutil
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path


def temporary_name(path: Path, kind: str = "") -> Path:
    """An unused hidden name beside `path` (same folder, so same disk), whose folder exists; it names the writing
    process (`.<name>.<pid>-<uuid><kind>.tmp`), so remove_debris can spare a writer that is still alive."""
    path.parent.mkdir(parents=True, exist_ok=True)
    return path.parent / f".{path.name}.{os.getpid()}-{uuid.uuid4().hex}{kind}.tmp"


def writer_alive(tmp: Path, name: str) -> bool:
    """Whether the process that named tmp (temporary_name, beside the file `name`) is still running, other than
    this one. Names without a process id (older runs') have no living writer."""
    pid = tmp.name[len(name) + 2:].split("-", 1)[0]
    if not pid.isdigit() or int(pid) == os.getpid():
        return False
    try:
        os.kill(int(pid), 0)  # signal 0: only asks whether the process exists
    except ProcessLookupError:
        return False
    except PermissionError:  # it exists, as another user's process
        return True
    return True


@contextlib.contextmanager
def atomic_path(path: str | Path) -> Iterator[Path]:
    """Yield a temporary path beside `path`; rename it onto `path` only if the block succeeds."""
    path = Path(path)
    tmp = temporary_name(path)
    try:
        yield tmp
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


@contextlib.contextmanager
def atomic_dir(path: str | Path) -> Iterator[Path]:
    """Yield an empty temporary folder beside `path`; it replaces `path` only if the block succeeds."""
    path = Path(path)
    tmp = temporary_name(path)
    tmp.mkdir()
    try:
        yield tmp
        # Rename the old folder aside, the new one in, then delete the old: at every moment `path` is a
        # complete folder (old or new), never missing or half-deleted.
        old = temporary_name(path, ".old") if path.exists() else None
        if old is not None:
            os.replace(path, old)
        os.replace(tmp, path)
        if old is not None:
            shutil.rmtree(old)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


@contextlib.contextmanager
def atomic_set(paths: dict[str, Path]) -> Iterator[dict[str, Path]]:
    """Yield a temporary path beside each of a stage's outputs; only when the block has written every one are
    they renamed in, one after the other. A failure while writing leaves the previous set as it was (no new
    file among old ones); the temporary files are removed however the block ends."""
    tmp = {key: temporary_name(Path(path)) for key, path in paths.items()}
    try:
        yield tmp
        missing = [key for key, path in tmp.items() if not path.exists()]
        if missing:
            raise RuntimeError(f"atomic_set: the block did not write {missing}")  # a bug in the caller
        for key, path in paths.items():
            os.replace(tmp[key], path)
    finally:
        for path in tmp.values():
            path.unlink(missing_ok=True)


def remove_debris(path: str | Path) -> list[Path]:
    """Delete the temporary files and folders that a killed run left beside `path` (`.<name>.<pid>-<uuid>*.tmp`: a
    process killed with SIGKILL runs no cleanup); return what was removed. Those of a writer still running are
    spared: `kill -9` of `dvc` alone leaves its stage's process running on, and its files are not debris."""
    path = Path(path)
    found = sorted(path.parent.glob(f".{path.name}.*.tmp")) if path.parent.is_dir() else []
    found = [stale for stale in found if not writer_alive(stale, path.name)]
    for stale in found:
        if stale.is_dir() and not stale.is_symlink():
            shutil.rmtree(stale, ignore_errors=True)
        else:
            stale.unlink(missing_ok=True)
    return found


@contextlib.contextmanager
def scratch_path(beside: str | Path, kind: str) -> Iterator[Path]:
    """Yield a temporary file name beside `beside` for work files; the file is removed when the block ends, however
    it ends. Nothing is created until the block writes it."""
    tmp = temporary_name(Path(beside), f".{kind}")
    try:
        yield tmp
    finally:
        tmp.unlink(missing_ok=True)


def write_with(path: str | Path, writer: Callable[[Path], object]) -> None:
    """Call writer(tmp_path) and move the result onto `path` atomically."""
    with atomic_path(path) as tmp:
        writer(tmp)


def write_text(path: str | Path, text: str) -> None:
    write_with(path, lambda tmp: tmp.write_text(text))


def write_json(path: str | Path, data) -> None:
    write_text(path, json.dumps(data, indent=2, sort_keys=False) + "\n")


def write_csv(path: str | Path, frame) -> None:
    """Write a pandas DataFrame without its index."""
    write_with(path, lambda tmp: frame.to_csv(tmp, index=False, float_format="%.6g"))


def read_json(path: str | Path):
    return json.loads(Path(path).read_text())


def plain_folder_name(name: str) -> bool:
    """A name that is one folder under its parent: not empty, not '.' or '..', no separator."""
    return bool(name) and name not in (".", "..") and "/" not in name and "\\" not in name
