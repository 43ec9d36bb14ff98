"""The images a task's runs leave out of training (data/label_drop/<task>.json): written by the audit stage, read by
each run. Under data.<task>.label_issues: drop they are the audit's likely label errors; under report, none. A run
leaves them out of its train and val splits only: its test split stays whole, and the report scores the verdict
with and without the flagged test images."""
from __future__ import annotations

from pathlib import Path

from facelab.data.batches import prepared_files
from facelab.errors import DataError
from facelab.files import read_json, write_json
from facelab.modelcard import Record


class LabelDrop(Record):
    """label_issues: the data.<task>.label_issues the audit ran with; rows: the prepared rows to leave out of train
    and val (ascending), files: their file names (the same order)."""
    label_issues: str
    rows: list[int]
    files: list[str]


def write_label_drop(path: str | Path, record: LabelDrop) -> None:
    write_json(path, record.model_dump(mode="json"))


def read_label_drop(path: str | Path, prepared: str | Path) -> LabelDrop | None:
    """The record, checked against the prepared folder it names rows of; None where no audit has written one (a root
    prepared outside the pipeline: nothing is left out, and the run's card says so)."""
    if not Path(path).is_file():
        return None
    record = LabelDrop.model_validate(read_json(path))
    if not record.rows and not record.files:  # report: nothing to check against the prepared folder
        return record
    files = prepared_files(prepared)
    stale = [(row, name) for row, name in zip(record.rows, record.files) if row >= len(files) or files[row] != name]
    if stale or len(record.rows) != len(record.files):
        why = (f"row {stale[0][0]} is not '{stale[0][1]}' there" if stale
               else f"{len(record.rows)} rows against {len(record.files)} file names")
        raise DataError(f"'{path}' does not match '{prepared}' ({why}): the audit is older than the prepared data; "
                        f"run `dvc repro` (or `dvc repro audit@<task>`) so the audit sees the data the run trains on")
    return record
