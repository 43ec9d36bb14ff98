"""Pull-request review: the review command's verdicts, and every `run:` step of review.yml executed in order in a
temporary repo with two commits (gh/cml stubbed to record the comment)."""
from __future__ import annotations

import dataclasses
import os
import re
import stat
import subprocess
import sys
from pathlib import Path

import matplotlib.image
import numpy as np
import pandas as pd
import pytest
import yaml

from facelab import paths
from facelab.evaluation.records import Confusion, Metrics
from facelab.modelcard import Compute
from facelab.params import RECIPES, TASKS
from facelab.reporting.review import (
    Side,
    load_side,
    machine_warnings,
    metrics_table,
    prepared_hash,
    seeds_line,
    shared_seeds,
    verdict,
)
from tests.conftest import ROOT, copy_repo, tiny_raw_params

WORKFLOW = ROOT / ".github" / "workflows" / "review.yml"
CHANGED = {(task, "resnet18_scratch") for task in TASKS}


def scored(macro_f1: float) -> Metrics:
    """A metrics file with the test macro F1 and interval a test controls."""
    scores = {"acc": 0.9, "loss": 0.5, "macro_f1": macro_f1}
    return Metrics.model_validate({"test": {**scores, "macro_f1_ci": [macro_f1 - 0.05, macro_f1 + 0.05]},
                                   "val": scores, "train": scores, "best_epoch": 1, "train_seconds": 1.0,
                                   "collapsed": False, "vanishing_gradients": False, "exploding_gradients": False})


def side(predicted: list[int], macro_f1: float, seed: int = 42) -> Side:
    actual = [0] * 50 + [1] * 50
    names = ["other", "target"]
    return Side(seed=seed, metrics=scored(macro_f1),
                history=pd.DataFrame({"epoch": [1], "train/loss": [1.0], "val/loss": [1.0], "train/acc": [0.5],
                                      "val/acc": [0.5]}),
                predictions=pd.DataFrame({"actual": [names[i] for i in actual],
                                          "predicted": [names[i] for i in predicted]}),
                confusion=Confusion(classes=names, raw=[[1, 0], [0, 1]], zscore=[[1, -1], [-1, 1]]))


def test_verdict_is_paired_on_the_same_split_and_interval_only_otherwise():
    truth = [0] * 50 + [1] * 50
    base = side([1] * 20 + truth[20:], 0.78)  # 20 images of class 0 wrong
    head = side(truth, 1.0)
    paired = verdict("face", "resnet18_scratch", [base], [head], same_split=True)
    # decided on the paired macro F1 difference, as the report decides; McNemar on accuracy beside it
    assert paired.startswith("**resnet18_scratch on face**: macro F1 0.780 → 1.000, macro F1 +0.208 (paired "
                             "bootstrap 95% CI [+")
    assert paired.endswith("p < 0.001); accuracy (McNemar's exact test): p = 1.9e-06, 20 test images only head got "
                           "right, 0 only base: significant.")
    close = verdict("face", "resnet18_scratch", [side([1] * 20 + truth[20:], 0.78)], [side([1] * 18 + truth[18:], 0.8)],
                    True)
    assert "; accuracy (McNemar's exact test): p = 0.5, 2 test images only head got right, 0 only base: not " \
           "significant; with 100 test images, a macro F1 difference of at least " in close
    apart = verdict("face", "resnet18_scratch", [base], [head], same_split=False)
    assert apart.endswith("the test split differs between the revisions, so no paired test: intervals "
                          "[0.730, 0.830] → [0.950, 1.050] (the intervals do not overlap).")


def computed(side_: Side, processor: str | None, kernels: str = "AVX2") -> Side:
    """side_ with a compute record (None: none, as results written before it was recorded)."""
    compute = None if processor is None else Compute(device="cpu", processor=processor, kernels=kernels, threads=2,
                                                     torch="2.14.1")
    return dataclasses.replace(side_, compute=compute)


def test_runs_computed_on_another_processor_are_flagged_once_and_same_machine_runs_are_not():
    truth = [0] * 50 + [1] * 50
    here = [computed(side(truth, 0.9, seed), "AMD EPYC") for seed in (42, 43)]
    assert machine_warnings([(computed(side(truth, 0.9), "AMD EPYC"), computed(side(truth, 0.9), "AMD EPYC"))]) == []
    pairs = [(computed(side(truth, 0.9, seed), "Intel Xeon", "AVX512"), head) for seed, head in zip((42, 43), here)]
    (line,) = machine_warnings(pairs)  # one line for both seeds
    assert line.startswith("⚠️ Computed elsewhere: the base's runs on CPU, Intel Xeon (AVX512 kernels, 2 threads), "
                           "torch 2.14.1, the workspace's on CPU, AMD EPYC (AVX2 kernels, 2 threads), torch 2.14.1.")
    assert "rerun the base on the workspace's machine" in line
    (older,) = machine_warnings([(computed(side(truth, 0.9), None), here[0])])
    assert older.startswith("⚠️ The base's results do not say where they were computed")


def test_a_side_reads_where_it_was_computed_from_its_details_file_when_there_is_one():
    import json

    files = {paths.evaluate_outputs("face", "resnet18_scratch", 42)[key].as_posix(): text for key, text in (
        ("metrics", side([0] * 100, 0.5).metrics.model_dump_json()), ("predictions", "actual,predicted\nother,other\n"),
        ("confusion", json.dumps({"classes": ["other", "target"], "raw": [[1, 0], [0, 0]],
                                  "zscore": [[0, 0], [0, 0]]})))}
    files[paths.history("face", "resnet18_scratch", 42).as_posix()] = "epoch,train/loss\n1,1.0\n"
    older = load_side(files.get, "face", "resnet18_scratch", 42)
    assert older is not None and older.compute is None  # a revision from before the record: not known
    compute = {"device": "cpu", "processor": "AMD EPYC", "kernels": "AVX2", "threads": 2, "torch": "2.14.1"}
    details = paths.evaluate_outputs("face", "resnet18_scratch", 42)["details"].as_posix()
    files[details] = json.dumps({"test_images": 1, "compute": compute})
    newer = load_side(files.get, "face", "resnet18_scratch", 42)
    assert newer is not None and newer.compute == Compute(**compute)


def test_a_change_that_moves_one_seed_and_not_the_others_is_not_called_significant():
    """Synthetic per-seed predictions: head fixes 20 images on seed 42 only; seeds 43 and 44 do not move. Seed 42
    alone is a clear paired difference; over the three seeds both revisions have, it is not."""
    truth = [0] * 50 + [1] * 50
    bases = [side([1] * 20 + truth[20:], 0.78, seed) for seed in (42, 43, 44)]
    heads = [side(truth, 1.0, 42), side([1] * 20 + truth[20:], 0.78, 43), side([1] * 21 + truth[21:], 0.77, 44)]
    alone = verdict("face", "resnet18_scratch", bases[:1], heads[:1], same_split=True)
    assert alone.endswith(": significant.")
    over = verdict("face", "resnet18_scratch", bases, heads, same_split=True)
    assert over.startswith("**resnet18_scratch on face** (3 seeds both revisions have: 42, 43, 44): macro F1 "
                           "0.780 ± 0.000 → 0.850 ± 0.130, macro F1 +0.")
    assert "over 3 seeds (95% CI over seeds and test images [-" in over and ": not significant; " in over
    assert "Almost Stochastic Order: ε_min" in over


def test_the_comment_says_how_many_seeds_both_revisions_have():
    base, head = "seeds: [42, 43]\n", "seeds: [42, 43, 44]\n"
    assert shared_seeds(base, head) == [42, 43]
    assert seeds_line([42, 43]).startswith("Compared over 2 seeds both revisions have (42, 43): ")
    assert "run-to-run variation is not included" in seeds_line([42])
    assert shared_seeds("seed: 42\n", head) == []  # a revision from before seeds: no run in common
    assert seeds_line([]).startswith("No seed is listed in both revisions' params.yaml")


def test_prepared_hash_comes_from_the_lock_and_metrics_table_keeps_headline_rows():
    lock = yaml.safe_dump({"stages": {"prepare@face": {"outs": [{"path": "data/prepared/face", "md5": "abc.dir"}]}}})
    assert prepared_hash(lock, "face") == "abc.dir" and prepared_hash(lock, "emotion") is None
    diff = {"metrics/face/x.json": {"test.acc": {"old": 0.5, "new": 0.75, "diff": 0.25},
                                    "train_seconds": {"old": 1.0, "new": 2.0, "diff": 1.0}}}
    assert metrics_table(diff, "HEAD~1") == ["| Path | Metric | HEAD~1 | workspace | Change |", "|---|---|---|---|---|",
                                             "| metrics/face/x.json | test.acc | 0.5000 | 0.7500 | 0.2500 |"]


# --- the workflow, executed step by step

STUB = """#!/usr/bin/env bash
echo "$(basename "$0") $*" >> "$RECORD/calls.log"
if [ "$(basename "$0")" = cml ]; then
  for last; do :; done
  cp "$last" "$RECORD/comment.md"
  exit "${CML_EXIT:-0}"
fi
"""


def expressions() -> dict[str, str]:
    """What GitHub would put in place of each ${{ ... }} on a pull request against HEAD~1 here."""
    return {"inputs.base || format('origin/{0}', github.base_ref)": "HEAD~1", "github.token": "test-token",
            "github.event.pull_request.number || github.ref": "1"}


def substitute(text: str) -> str:
    known = expressions()

    def value(match):
        expression = match.group(1).strip()
        assert expression in known, f"review.yml uses ${{{{ {expression} }}}}: say here what it is on a PR"
        return known[expression]
    return re.sub(r"\$\{\{(.*?)\}\}", value, text)


def run_steps(path: Path, record: Path, cml_exit: int = 0,
              names: tuple[str, ...] | None = None) -> list[tuple[str, str]]:
    """Run review.yml's `run:` steps (or those named) in order, as GitHub would on a pull request; return each
    step's name and output. `uses:` steps are actions that set up the runner: this machine has what they install."""
    spec = yaml.safe_load(WORKFLOW.read_text())
    job = spec["jobs"]["review"]
    stubs = record / "bin"
    stubs.mkdir(exist_ok=True)
    for tool in ("pip", "cml", "gh"):  # no network: installs and the GitHub API are recorded, not run
        (stubs / tool).write_text(STUB)
        (stubs / tool).chmod(stubs.joinpath(tool).stat().st_mode | stat.S_IEXEC)
    env = {**os.environ, "PATH": f"{stubs}{os.pathsep}{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}",
           "RECORD": str(record), "CML_EXIT": str(cml_exit),
           **{k: substitute(str(v)) for k, v in job.get("env", {}).items()}}
    ran = []
    for step in job["steps"]:
        if "run" not in step or (names and step["name"] not in names):
            continue
        if "if" in step:
            assert step["if"] == "github.event_name == 'pull_request'", step["if"]
        step_env = {**env, **{k: substitute(str(v)) for k, v in step.get("env", {}).items()}}
        result = subprocess.run(["bash", "-eo", "pipefail", "-c", substitute(step["run"])], cwd=path, env=step_env,
                                capture_output=True, text=True)
        assert result.returncode == 0, (step["name"], result.stdout[-3000:], result.stderr[-3000:])
        ran.append((step["name"], result.stdout + result.stderr))
    return ran


@pytest.fixture(scope="module")
def reviewed(tmp_path_factory, changed_repo, stand_in_torch_home):
    """Commit 1: the tiny pipeline's results. Commit 2: resnet18_scratch's lr changed to 0.01, with the results
    `dvc exp run` gave it (a copy of the session's changed repo). The workflow reproduces (nothing left to run: the
    results are committed, as this project commits them) and reviews commit 2 against commit 1. DVC keeps no run
    cache for stages with `cache: false` outputs, so a commit without its results would retrain here."""
    path = copy_repo(changed_repo[0], tmp_path_factory.mktemp("review") / "repo")
    record = path.parent / "record"
    record.mkdir()
    os.environ["TORCH_HOME"], old = str(stand_in_torch_home), os.environ.get("TORCH_HOME")
    try:
        ran = run_steps(path, record)
    finally:
        os.environ.pop("TORCH_HOME") if old is None else os.environ.__setitem__("TORCH_HOME", old)
    return path, record, ran


@pytest.mark.e2e
def test_workflow_runs_every_step_and_posts_the_review_as_one_updated_comment(reviewed):
    path, record, ran = reviewed
    assert [name for name, _ in ran] == ["Install, with CPU-only torch (the runner has no GPU)",
                                         "Reproduce the pipeline",
                                         "Review against the base revision",
                                         "Plots diff page (every curve and matrix of both revisions)",
                                         "Comment on the pull request (one comment, updated on every push)"]
    calls = (record / "calls.log").read_text().splitlines()
    assert calls[-1] == "cml comment update --target=pr --publish --watermark-title=facelab review review/comment.md"
    assert (path / "plots-diff" / "index.html").is_file()
    assert (record / "comment.md").read_text() == (path / "review" / "comment.md").read_text()


@pytest.mark.e2e
def test_the_comment_has_the_metrics_diff_verdicts_unchanged_lines_and_images_that_open(reviewed):
    path, record, _ = reviewed
    comment = (record / "comment.md").read_text()
    table = [line for line in comment.splitlines() if line.startswith("| metrics/")]
    assert table and all(line.split(" | ")[1] in ("test.acc", "test.macro_f1", "collapsed", "weights_verified")
                         for line in table)  # headline metrics only
    changed = {paths.metrics(t, "resnet18_scratch", seed).as_posix() for t in TASKS
               for seed in tiny_raw_params()["seeds"]}
    assert {line.split(" | ")[0][2:] for line in table} <= changed
    for task in TASKS:
        line = next(text for text in comment.splitlines() if text.startswith(f"- **resnet18_scratch on {task}**"))
        assert re.search(r"paired bootstrap 95% CI \[[+-]\d\.\d{3}, [+-]\d\.\d{3}\], p [=<] [\d.e-]+\); "
                         r"accuracy \(McNemar's exact test\): p = [\d.e-]+, .*: (not )?significant", line), line
    unchanged = next(line for line in comment.splitlines() if line.startswith("- unchanged: "))
    assert sorted(unchanged[len("- unchanged: "):-1].split(", ")) == sorted(
        f"{t}/{r}" for t in TASKS for r in RECIPES if (t, r) not in CHANGED)
    assert "> ⚠️ face/resnet18_pretrained: not ImageNet weights" in comment  # this suite's stand-in files
    images = re.findall(r"!\[[^\]]*\]\(([^)]+)\)", comment)
    # base/head figures, and the strip of discordant test images (same prepared split at both revisions)
    assert sorted(images) == sorted([f"{t}_{r}.png" for t, r in CHANGED]
                                    + [f"{t}_{r}_discordant.png" for t, r in CHANGED])
    for image in images:
        pixels = matplotlib.image.imread(path / "review" / image)
        assert (pixels.shape[0] > (50 if image.endswith("_discordant.png") else 300)
                and np.unique(pixels.reshape(-1, pixels.shape[-1]), axis=0).shape[0] > 20)
        assert (path / "review" / image).stat().st_size < 300_000  # small enough for a comment


@pytest.mark.e2e
def test_a_read_only_token_explains_itself_instead_of_failing(reviewed):
    path, record, _ = reviewed
    ((_, output),) = run_steps(path, record, cml_exit=1,
                               names=("Comment on the pull request (one comment, updated on every push)",))
    assert "::warning::Could not comment (a fork's pull request gets a read-only token)." in output
    assert "## facelab review: workspace vs `HEAD~1`" in output


def test_workflow_can_run_by_hand_and_needs_no_secret():
    spec = yaml.safe_load(WORKFLOW.read_text())
    assert {"pull_request", "workflow_dispatch"} <= set(spec[True])  # PyYAML reads the bare key `on` as True
    assert "secrets." not in WORKFLOW.read_text()
