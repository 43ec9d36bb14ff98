"""dvc.yaml's top-level plots, and `dvc plots diff` on fake results in a temp repo."""
import itertools
import json
import re
import sys
from pathlib import Path

import pytest
import yaml

from facelab.params import RECIPES, TASKS
from tests.conftest import ROOT, make_repo, sh, tiny_raw_params
from tests.test_report import fake_experiment, write_experiment

pytestmark = pytest.mark.e2e  # starts dvc, torchrun or a training subprocess



def dvc_yaml() -> dict:
    return yaml.safe_load((ROOT / "dvc.yaml").read_text())


def top_level_plots() -> dict[str, dict]:
    """Each top-level plot definition by id; an image given as a bare path gets an empty definition."""
    return {k: v for item in dvc_yaml()["plots"]
            for k, v in (item.items() if isinstance(item, dict) else [(item, {})])}


def stage_outputs() -> dict[str, list[str]]:
    """Every declared output path (outs, metrics, plots) of every stage, matrix expanded."""
    found = {}
    for name, stage in dvc_yaml()["stages"].items():
        matrix = stage.get("matrix", {})
        for values in itertools.product(*matrix.values()):
            item = dict(zip(matrix, values))
            for kind in ("outs", "metrics", "plots"):
                for entry in stage.get(kind, []):
                    path = entry if isinstance(entry, str) else next(iter(entry))
                    found.setdefault(re.sub(r"\$\{item\.(\w+)\}", lambda m: item[m[1]], path), []).append(name)
    return found


def test_loss_and_accuracy_curves_overlay_the_three_recipes_of_each_task():
    plots = top_level_plots()
    for task in TASKS:
        for name, column in (("loss", "loss"), ("accuracy", "acc")):
            plot = plots[f"{task}/{name}"]
            assert plot["x"] == "epoch" and plot["template"] == "linear"
            assert plot["y"] == {f"plots/{task}/{recipe}/history.csv": [f"train/{column}", f"val/{column}"]
                                 for recipe in RECIPES}


def test_every_experiment_has_confusion_matrices_and_image_plots():
    plots = top_level_plots()
    for task, recipe in itertools.product(TASKS, RECIPES):
        for template in ("confusion", "confusion_normalized"):
            assert plots[f"{task}/{recipe}/{template}"] == {
                "template": template, "x": "predicted", "y": {f"plots/{task}/{recipe}/predictions.csv": "actual"}}
        for image in (f"plots/zscore/{task}/{recipe}.png", f"plots/{task}/{recipe}/gradients.png",
                      f"plots/{task}/{recipe}/parameters.png"):
            assert plots[image] == {}


def test_every_plotted_file_is_the_output_of_exactly_one_stage():
    outputs = stage_outputs()
    assert all(len(stages) == 1 for stages in outputs.values()), outputs
    files = [path for plot_id, plot in top_level_plots().items() for path in (plot.get("y") or {plot_id: None})]
    for path in files:
        owners = [stage for out, stages in outputs.items() for stage in stages
                  if path == out or path.startswith(out + "/")]
        assert len(owners) == 1, (path, owners)
    report = dvc_yaml()["stages"]["report"]
    assert not [dep for dep in report["deps"] if "plots/zscore".startswith(dep)]  # its own output is no dep


# --- `dvc plots diff` between two commits of fake results (no training: the report stage's CLI only)

def commit_results(path: Path, experiments: list[dict], message: str) -> None:
    for exp in experiments:
        write_experiment(path, exp, histograms=True)
    sh(sys.executable, "-m", "stages.report", cwd=path)
    sh("git", "add", "-A", cwd=path)
    sh("git", "commit", "-qm", message, cwd=path)


def fake_runs(scratch_val_acc: list[float]):
    return [fake_experiment(task, recipe, scratch_val_acc if recipe == "resnet18_scratch" else [0.5, 0.7])
            for task in TASKS for recipe in RECIPES]


@pytest.fixture(scope="module")
def diffed(tmp_path_factory):
    path = make_repo(tmp_path_factory.mktemp("plots_diff") / "repo", tiny_raw_params())
    commit_results(path, fake_runs([0.4, 0.6]), "baseline")
    commit_results(path, fake_runs([0.3, 0.9]), "a change to resnet18_scratch")
    out = path.parent / "diff"
    data = json.loads(sh("dvc", "plots", "diff", "HEAD~1", "--json", "-o", str(out / "json"), cwd=path).stdout)
    sh("dvc", "plots", "diff", "HEAD~1", "-o", str(out / "html"), cwd=path)
    return data["data"], (out / "html" / "index.html").read_text()


def test_plots_diff_shows_both_revisions_of_every_top_level_plot(diffed):
    data, _ = diffed
    for plot_id in top_level_plots():
        revisions = {rev for entry in data[plot_id] for rev in entry["revisions"]}
        assert revisions == {"HEAD~1", "workspace"}, plot_id
    values = data["face/accuracy"][0]["content"]["data"]["values"]
    scratch = {(v["rev"], v["epoch"]): float(v["val/acc"]) for v in values
               if v["filename::field"] == "resnet18_scratch/history.csv::val/acc"}
    assert scratch == {("HEAD~1", "1"): 0.4, ("HEAD~1", "2"): 0.6, ("workspace", "1"): 0.3, ("workspace", "2"): 0.9}


def test_plots_diff_page_mentions_every_experiment(diffed):
    _, page = diffed
    for task, recipe in itertools.product(TASKS, RECIPES):
        for name in ("confusion", "confusion_normalized"):
            assert f"{task}/{recipe}/{name}" in page
        assert f"{recipe}/history.csv::val/acc" in page
        for rev in ("HEAD~1", "workspace"):
            assert f"{rev}_plots_zscore_{task}_{recipe}.png" in page
