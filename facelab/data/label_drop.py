"""The images a task's runs leave out of training (data/label_drop/<task>.json): written by the audit stage, read by
each run. Under data.<task>.label_issues: drop they are the audit's likely label errors; under report, none. A run
leaves them out of its train and val splits only: its test split stays whole, and the report scores the verdict
with and without the flagged test images."""
from __future__ import annotations

from pathlib import Path

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


def read_label_drop(path: str | Path) -> LabelDrop | None:
    """The record; None where no audit has written one (a root prepared outside the pipeline: nothing is left out,
    and the run's card says so)."""
    return LabelDrop.model_validate(read_json(path)) if Path(path).is_file() else None
