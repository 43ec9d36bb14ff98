"""data.<task>.label_issues: drop. The audit stage writes the flagged images (none under report); a run leaves those of
its train and val splits out of training, never its test split, records them in its card, and evaluate draws the same
split again from the card."""
from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from facelab import paths
from facelab.data import prepare
from facelab.data.batches import prepared_files, prepared_split
from facelab.data.label_drop import LabelDrop, read_label_drop, write_label_drop
from facelab.errors import DataError
from facelab.evaluation.audit import audit_task, drop_lines
from facelab.evaluation.experiment import evaluate_experiment
from facelab.modelfile import load_trained
from facelab.training.experiment import train_experiment

TASK, RECIPE = "emotion", "resnet18_scratch"


@pytest.fixture
def root(tiny_params, tmp_path):
    prepare.prepare_task(TASK, tiny_params.data[TASK], tiny_params.data_seed, paths.prepared(TASK, tmp_path))
    return tmp_path


def test_the_audit_hands_the_runs_its_flagged_images_under_drop_and_none_under_report(tiny_params, root):
    folder = paths.prepared(TASK, root)
    labels = np.load(paths.prepared_labels(folder))
    np.save(paths.prepared_labels(folder), np.where(np.arange(len(labels)) < 8, (labels + 1) % 3, labels))  # misfiled
    seeds, split = list(tiny_params.seeds), tiny_params.data[TASK].split
    for handling in ("report", "drop"):
        record = audit_task(folder, root / "issues.json", root / "issues.png", paths.label_drop(TASK, root), seeds,
                            split, handling, tiny_params.data_seed)
        drop = read_label_drop(paths.label_drop(TASK, root), folder)
        flagged = sorted(issue.row for issue in record.results.issues)
        assert drop is not None and drop.label_issues == handling and flagged
        assert drop.rows == (flagged if handling == "drop" else []) and len(drop.files) == len(drop.rows)
        lines = drop_lines(record)
        assert len(lines) == (len(seeds) if handling == "drop" else 0)
    counts = record.results.counts[str(seeds[0])]
    assert lines[0].startswith(f"seed {seeds[0]}: {sum(counts['train'].values()) + sum(counts['val'].values())} "
                               f"flagged image(s) left out of train and val")


def test_a_run_leaves_its_dropped_train_and_val_images_out_and_evaluate_draws_the_same_split(tiny_params, root,
                                                                                              capsys):
    folder, seed, split = paths.prepared(TASK, root), tiny_params.seeds[0], tiny_params.data[TASK].split
    rows = prepared_split(folder, seed, split)
    out = sorted(rows["train"][:3].tolist() + rows["val"][:1].tolist())
    listed = sorted(out + rows["test"][:2].tolist())  # flagged test images stay in the test split
    names = prepared_files(folder)
    write_label_drop(paths.label_drop(TASK, root), LabelDrop(label_issues="drop", rows=listed,
                                                             files=[names[row] for row in listed]))
    recipe = dataclasses.replace(tiny_params.models[RECIPE], epochs=1)
    train_experiment(TASK, RECIPE, recipe, tiny_params.train, tiny_params.wandb, seed, split, root=root)
    assert "4 image(s) the audit flags are left out of train and val" in capsys.readouterr().out
    card = load_trained(TASK, RECIPE, root=root, seed=seed).card.settings.split
    assert card.label_issues == "drop" and card.left_out == out
    assert [sum(card.counts[name].values()) for name in ("train", "val", "test")] == [
        len(rows["train"]) - 3, len(rows["val"]) - 1, len(rows["test"])]
    result = evaluate_experiment(TASK, RECIPE, seed, 64, root)  # refuses a split other than the card's
    assert len(result.predictions) == len(rows["test"])
    paths.label_drop(TASK, root).unlink()  # later the audit hands over nothing: evaluate still uses the card's split
    assert len(evaluate_experiment(TASK, RECIPE, seed, 64, root).predictions) == len(rows["test"])


def test_a_drop_list_of_other_data_is_refused_before_training(tiny_params, root):
    """Outside DVC (a stage run by hand after prepare ran again) the audit's rows may name other images: refused."""
    folder = paths.prepared(TASK, root)
    names = prepared_files(folder)
    write_label_drop(paths.label_drop(TASK, root), LabelDrop(label_issues="drop", rows=[0, 1],
                                                             files=[names[0], names[2]]))
    with pytest.raises(DataError, match=r"does not match .* \(row 1 is not '.*' there\): the audit is older"):
        train_experiment(TASK, RECIPE, tiny_params.models[RECIPE], tiny_params.train, tiny_params.wandb,
                         tiny_params.seeds[0], tiny_params.data[TASK].split, root=root)
    assert not paths.model(TASK, RECIPE, tiny_params.seeds[0], root).exists()
    write_label_drop(paths.label_drop(TASK, root), LabelDrop(label_issues="drop", rows=[0, 1], files=[names[0]]))
    with pytest.raises(DataError, match=r"does not match .* \(2 rows against 1 file names\): the audit is older"):
        read_label_drop(paths.label_drop(TASK, root), folder)
