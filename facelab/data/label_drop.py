"""The images a task's runs leave out of training (data/label_drop/<task>.json): written by the audit stage, read by
each run. Under data.<task>.label_issues: drop they are the audit's likely label errors; under report, none. A run
leaves them out of its train and val splits only: its test split stays whole, and the report scores the verdict
with and without the flagged test images."""
from __future__ import annotations

from pathlib import Path

import pandas as pd

from facelab import paths
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
    files = pd.read_csv(paths.prepared_manifest(Path(prepared)))["file"].astype(str).tolist()
    stale = [(row, name) for row, name in zip(record.rows, record.files) if row >= len(files) or files[row] != name]
    if stale or len(record.rows) != len(record.files):
        row, name = stale[0] if stale else (None, None)
        raise DataError(f"'{path}' does not match '{prepared}' (row {row} is not '{name}' there): the audit is older "
                        f"than the prepared data; run `dvc repro` (or `dvc repro audit@<task>`) so the audit sees "
                        f"the data the run trains on")
    return record
