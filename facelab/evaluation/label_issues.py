"""The audit stage's record of likely label errors (metrics/<task>/label_issues.json): written by
facelab.evaluation.audit (write_label_issues), read by the report (read_label_issues). Settings and results apart."""
from __future__ import annotations

from pathlib import Path

from facelab.files import read_json, write_json
from facelab.modelcard import Record


class LabelIssue(Record):
    """One image whose given class the out-of-sample probabilities doubt: cleanlab's self-confidence is the
    probability of the given class (low: likely wrong); suggested is the most probable class."""
    file: str
    row: int  # the image's row in the prepared folder (or in the audited folder's reading order)
    given: str
    suggested: str
    self_confidence: float
    splits: dict[str, str] = {}  # seed -> the split the image is in for that seed's runs (pipeline audits only)


class AuditSettings(Record):
    """How the probabilities were made: which features, classifier, folds and seed (facelab.evaluation.audit)."""
    features: str
    classifier: str
    folds: int
    seed: int
    filter_by: str
    label_issues: str | None  # data.<task>.label_issues, what the pipeline does with them (None: `facelab audit`)

class AuditResults(Record):
    """What the audit found. counts: seed -> split -> class -> flagged images; test_positions: seed -> the flagged
    images' positions in that seed's test split, in the order of the runs' predictions.csv rows."""
    images: int
    flagged: int
    seconds: float
    counts: dict[str, dict[str, dict[str, int]]] = {}
    test_positions: dict[str, list[int]] = {}
    issues: list[LabelIssue]  # most likely first (lowest self-confidence)

    def flagged_in(self, seed: int | str, split: str) -> int:
        """How many flagged images seed's split holds (0 for a seed or split the audit has none of)."""
        return sum(self.counts.get(str(seed), {}).get(split, {}).values())


class LabelIssues(Record):
    settings: AuditSettings
    results: AuditResults


def write_label_issues(path: str | Path, record: LabelIssues) -> None:
    write_json(path, record.model_dump(mode="json"))


def read_label_issues(path: str | Path) -> LabelIssues:
    return LabelIssues.model_validate(read_json(path))
