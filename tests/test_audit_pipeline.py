"""audit@<task> in the shared tiny pipeline: its record covers every prepared image, counts agree with the flagged
files' splits, and the report shows the section with the gallery and the verdict without the flagged test images."""
from __future__ import annotations

import numpy as np
import pytest

from facelab import paths
from facelab.data.label_drop import read_label_drop
from facelab.evaluation.label_issues import read_label_issues
from facelab.files import read_json
from facelab.params import TASKS
from tests.conftest import tiny_raw_params

pytestmark = pytest.mark.e2e  # reads the repo the shared tiny `dvc repro` built

SEED = str(tiny_raw_params()["seeds"][0])


def test_the_audit_stage_records_every_prepared_image_and_the_report_shows_it(built_repo):
    path, log = built_repo
    markdown = (path / "reports" / "report.md").read_text()
    for task in TASKS:
        assert f"Running stage 'audit@{task}'" in log
        record = read_label_issues(paths.label_issues(task, path))
        labels = np.load(paths.prepared_labels(paths.prepared(task, path)))
        assert record.results.images == len(labels) and record.results.flagged == len(record.results.issues)
        for split, per_class in record.results.counts[SEED].items():
            assert sum(per_class.values()) == sum(issue.splits[SEED] == split for issue in record.results.issues)
        assert len(record.results.test_positions[SEED]) == sum(record.results.counts[SEED]["test"].values())
        assert paths.label_issues_gallery(task, path).stat().st_size > 1000
        section = markdown.split(f"### {task}: likely label errors\n")[1].split("\n### ")[0]
        assert f"flags {record.results.flagged} of {len(labels)} prepared images" in section
        assert f"figures/{task}_label_issues.png" in section
        assert (path / "reports" / "figures" / f"{task}_label_issues.png").is_file()
        assert "Without the flagged test images" in section and "the verdict " in section
        drop = read_label_drop(paths.label_drop(task, path), paths.prepared(task, path))  # under report: nothing
        assert drop is not None and (drop.label_issues, drop.rows) == ("report", [])
        card = read_json(paths.model_info(task, "resnet18_scratch", int(SEED), path))["settings"]["split"]
        assert (card["label_issues"], card["left_out"]) == ("report", [])
