"""dvc.yaml's top-level plots, and `dvc plots diff` on fake results in a temp repo."""
import itertools
import json
import re
import sys
from pathlib import Path

import pytest
import yaml

from facelab import paths
from facelab.params import RECIPES, TASKS
from facelab.reporting.results import Experiment
from tests.conftest import ROOT, make_repo, sh, tiny_raw_params
from tests.test_report import fake_experiment, write_experiment

pytestmark = pytest.mark.e2e  # starts dvc, torchrun or a training subprocess



def dvc_yaml() -> dict:
    return yaml.safe_load((ROOT / "dvc.yaml").read_text())


SEEDS = yaml.safe_load((ROOT / "params.yaml").read_text())["seeds"]


def top_level_plots() -> dict[str, dict]:
    """Each top-level plot definition by id; an image given as a bare path gets an empty definition."""
    return {k: v for item in dvc_yaml()["plots"]
            for k, v in (item.items() if isinstance(item, dict) else [(item, {})])}


def expand(path: str, item: dict) -> str:
    return re.sub(r"\$\{item\.(\w+)\}", lambda m: str(item[m[1]]), path)


def stage_outputs(seeds=SEEDS) -> dict[str, list[str]]:
    """Every declared output path (outs, metrics, plots) of every stage, matrix expanded (`${seeds}`: params')."""
    found: dict[str, list[str]] = {}
    for name, stage in dvc_yaml()["stages"].items():
        matrix = {key: seeds if values == "${seeds}" else values for key, values in stage.get("matrix", {}).items()}
        for values in itertools.product(*matrix.values()):
            item = dict(zip(matrix, values))
            for kind in ("outs", "metrics", "plots"):
                for entry in stage.get(kind, []):
                    path = entry if isinstance(entry, str) else next(iter(entry))
                    found.setdefault(expand(path, item), []).append(name)
    return found


def stage_plots(stage: str) -> dict[str, dict]:
    """A stage's plots: entries (one run's), by path with its ${item...} left in."""
    return {k: v for entry in dvc_yaml()["stages"][stage]["plots"] for k, v in entry.items()}


def test_each_experiment_overlays_the_curves_of_every_seed_in_params():
    """Top-level plots cannot loop over params: the curves name the files of params.yaml's seeds, kept in step
    here (a changed `seeds:` fails this test until dvc.yaml's plots follow)."""
    plots = top_level_plots()
    for task, recipe in itertools.product(TASKS, RECIPES):
        for name, column in (("loss", "loss"), ("accuracy", "acc")):
            plot = plots[f"{task}/{recipe}/{name}"]
            assert plot["x"] == "epoch" and plot["template"] == "linear"
            assert plot["y"] == {paths.history(task, recipe, seed).as_posix(): [f"train/{column}", f"val/{column}"]
                                 for seed in SEEDS}
    assert len(plots) == len(TASKS) * len(RECIPES) * 2 + 1 and plots["plots/zscore"] == {}  # the report's images


def test_every_run_has_its_confusion_matrix_and_images_as_stage_plots():
    """Declared in the run stage, so every seed's run gets them from the matrix, whatever params.yaml's seeds."""
    item = {"task": "face", "recipe": "vgg16_finetune", "seed": 42}
    declared = {expand(path, item): plot for path, plot in stage_plots("run").items()}
    scored = paths.evaluate_outputs("face", "vgg16_finetune", 42)
    trained = paths.train_outputs("face", "vgg16_finetune", 42)
    assert declared == {scored["predictions"].as_posix(): {"cache": False, "template": "confusion",
                                                           "x": "predicted", "y": "actual"},
                        **{scored[key].as_posix(): {"cache": False} for key in ("reliability", "gallery", "saliency")},
                        **{trained[key].as_posix(): {"cache": False} for key in ("gradients_png", "parameters_png")}}


def test_every_plotted_file_is_the_output_of_exactly_one_stage():
    outputs = stage_outputs()
    assert all(len(stages) == 1 for stages in outputs.values()), outputs
    files = [path for plot_id, plot in top_level_plots().items() for path in (plot.get("y") or {plot_id: None})]
    for path in files:
        owners = [stage for out, stages in outputs.items() for stage in stages
                  if path == out or path.startswith(out + "/") or out.startswith(path + "/")]
        assert len(owners) == 1, (path, owners)
    report = dvc_yaml()["stages"]["report"]
    assert not [dep for dep in report["deps"] if "plots/zscore".startswith(dep)]  # its own output is no dep


def test_every_declared_output_of_a_run_is_a_file_its_stage_writes():
    """dvc.yaml's outs of a run are exactly paths.train_outputs and paths.evaluate_outputs, per seed."""
    outputs = stage_outputs(seeds=[7])
    for task, recipe in itertools.product(TASKS, RECIPES):
        written = [*paths.train_outputs(task, recipe, 7).values(), *paths.evaluate_outputs(task, recipe, 7).values()]
        declared = {out for out, stages in outputs.items() if stages[0] == "run"
                    and f"/{task}/{recipe}/" in out}
        assert declared == {path.as_posix() for path in written}


# --- `dvc plots diff` between two commits of fake results (no training: the report stage's CLI only)

def commit_results(path: Path, experiments: list[Experiment], message: str) -> None:
    for exp in experiments:
        write_experiment(path, exp, histograms=True)
    sh(sys.executable, "-m", "stages.report", cwd=path)
    sh("git", "add", "-A", cwd=path)
    sh("git", "commit", "-qm", message, cwd=path)


def fake_runs(scratch_val_acc: list[float]) -> list[Experiment]:
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


def test_plots_diff_shows_both_revisions_of_every_plot(diffed):
    data, _ = diffed
    seed = tiny_raw_params()["seeds"][0]  # the repo's run: the other seeds' curves have no file there
    for task, recipe in itertools.product(TASKS, RECIPES):
        scored = paths.evaluate_outputs(task, recipe, seed)
        for plot_id in (f"{task}/{recipe}/loss", f"{task}/{recipe}/accuracy", scored["predictions"].as_posix(),
                        f"{paths.zscore_plots().as_posix()}/{task}/{recipe}.png", scored["saliency"].as_posix()):
            revisions = {rev for entry in data[plot_id] for rev in entry["revisions"]}
            assert revisions == {"HEAD~1", "workspace"}, plot_id
    values = data["face/resnet18_scratch/accuracy"][0]["content"]["data"]["values"]
    scratch = {(v["rev"], v["epoch"]): float(v["val/acc"]) for v in values
               if v["filename::field"].endswith(f"seed{seed}/history.csv::val/acc")}
    assert scratch == {("HEAD~1", "1"): 0.4, ("HEAD~1", "2"): 0.6, ("workspace", "1"): 0.3, ("workspace", "2"): 0.9}


def test_plots_diff_page_mentions_every_experiment(diffed):
    _, page = diffed
    seed = tiny_raw_params()["seeds"][0]
    for task, recipe in itertools.product(TASKS, RECIPES):
        assert f"id = \"{task}_{recipe}_accuracy\"" in page and f"seed{seed}/history.csv::val/acc" in page
        assert paths.evaluate_outputs(task, recipe, seed)["predictions"].as_posix() in page  # its confusion matrix
        for rev in ("HEAD~1", "workspace"):
            assert f"{rev}_plots_zscore_{task}_{recipe}.png" in page
            assert f"{rev}_plots_{task}_{recipe}_seed{seed}_saliency.png" in page
