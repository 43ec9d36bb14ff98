"""End to end: real `dvc repro` and `dvc exp run -S` on a tiny configuration in a temporary git repo."""
import json
import os
import re
from html.parser import HTMLParser

import pandas as pd
import pytest
import yaml

from facelab import paths
from facelab.params import RECIPES, TASKS
from facelab.reporting.document import SECTIONS
from tests.conftest import copy_repo, sh, stale_stages, tiny_raw_params

pytestmark = pytest.mark.e2e  # starts dvc, torchrun or a training subprocess

SCANS = {f"scan@{t}" for t in TASKS}  # always run: they list the data sources' files
SEED = tiny_raw_params()["seeds"][0]  # the tiny repo trains one seed


def runs(seed: int, recipes=RECIPES) -> set[str]:
    """The run stages of one seed (dvc.yaml's matrix names them run@<task>-<recipe>-<seed>)."""
    return {f"run@{t}-{r}-{seed}" for t in TASKS for r in recipes}


AUDITS = {f"audit@{t}" for t in TASKS}  # the label audit records where its flagged images fall in every seed's split
ALL_STAGES = SCANS | {f"prepare@{t}" for t in TASKS} | AUDITS | {"report"} | runs(SEED)


def stages_run(output: str) -> set[str]:
    return set(re.findall(r"Running stage '([^']+)'", output))


class Images(HTMLParser):
    def __init__(self):
        super().__init__()
        self.sources = []

    def handle_starttag(self, tag, attrs):
        if tag == "img":
            self.sources.append(dict(attrs)["src"])


@pytest.fixture(scope="module")
def repo(tmp_path_factory, built_repo, changed_repo, stand_in_torch_home):
    """A copy of the session's tiny pipeline: HEAD~1 the first `dvc repro`'s results, HEAD those of `dvc exp run
    -S models.resnet18_scratch.lr=0.01`; and the two runs' outputs."""
    path = copy_repo(changed_repo[0], tmp_path_factory.mktemp("pipeline") / "repo")
    return path, {**os.environ, "TORCH_HOME": str(stand_in_torch_home)}, built_repo[1], changed_repo[1]


def test_repro_runs_every_stage_and_writes_the_declared_outputs(repo):
    path, _, output, _ = repo
    assert stages_run(output) == ALL_STAGES
    for task in TASKS:
        for recipe in RECIPES:
            scored = paths.evaluate_outputs(task, recipe, SEED, path)
            metrics = json.loads(scored["metrics"].read_text())
            details = json.loads(scored["details"].read_text())
            test = metrics["test"]
            assert set(test) == {"acc", "acc_ci", "loss", "macro_f1", "macro_f1_ci", "ece", "ece_ci"}
            assert test["acc_ci"][0] <= test["acc"] <= test["acc_ci"][1]
            assert test["macro_f1_ci"][0] <= test["macro_f1"] <= test["macro_f1_ci"][1]
            assert details["epochs"] == 2 and metrics["best_epoch"] in (1, 2)
            assert metrics["vanishing_gradients"] is False and isinstance(metrics["collapsed"], bool)
            assert bool(details["health"]["frozen_layers"]) == (recipe == "vgg16_finetune")
            # the pretrained recipes ran on this suite's stand-in files: flagged, not hidden
            assert metrics["weights_verified"] is (False if recipe != "resnet18_scratch" else None)
            assert details["weights"]["verified"] is metrics["weights_verified"]
            history = pd.read_csv(paths.history(task, recipe, SEED, path))
            assert history["epoch"].tolist() == [1, 2]
            predictions = pd.read_csv(scored["predictions"])
            assert metrics["test"]["acc"] == pytest.approx((predictions.actual == predictions.predicted).mean())
            confusion = json.loads(scored["confusion"].read_text())
            assert sum(map(sum, confusion["raw"])) == len(predictions)
            assert paths.model(task, recipe, SEED, path).stat().st_size > 1000
            card = json.loads(paths.model_info(task, recipe, SEED, path).read_text())
            assert card["settings"]["seed"] == SEED  # the run's seed and the split it drew
            assert sum(card["settings"]["split"]["counts"]["test"].values()) == len(predictions)
    assert paths.evaluate_outputs("face", "resnet18_scratch", SEED, path)["classes"].is_file()


def flat_keys(data: dict, prefix: str = "") -> list[str]:
    """A metrics file's keys as `dvc exp show` names its columns: nested keys joined with dots."""
    keys = []
    for key, value in data.items():
        keys += flat_keys(value, f"{prefix}{key}.") if isinstance(value, dict) else [f"{prefix}{key}"]
    return keys


def test_report_page_shows_every_experiment_and_its_images_resolve(repo):
    path, _, _, _ = repo
    page = (path / "reports" / "index.html").read_text()
    parser = Images()
    parser.feed(page)
    for task in TASKS:
        for recipe in RECIPES:
            assert f"id='{task}_{recipe}'" in page
            assert f"figures/{task}_{recipe}_curves.png" in parser.sources
    assert parser.sources and all((path / "reports" / src).is_file() for src in parser.sources)


def test_outputs_are_tracked_as_dvc_metrics_and_plots_and_repro_is_a_no_op(repo):
    path, env, _, _ = repo
    assert stale_stages(path, env) == {}
    assert stages_run(sh("dvc", "repro", cwd=path, env=env).stdout) == SCANS  # and nothing else
    shown = json.loads(sh("dvc", "metrics", "show", "--json", cwd=path, env=env).stdout)
    files = next(iter(shown.values()))["data"]
    assert set(files) == {paths.metrics(t, r, SEED).as_posix() for t in TASKS for r in RECIPES}  # details are outs
    header = sh("dvc", "exp", "show", "--csv", cwd=path, env=env).stdout.splitlines()[0].split(",")
    leaves = {f"{name}:{key}" for name, file in files.items() for key in flat_keys(file["data"])}
    metric_columns = [c for c in header if c in leaves or any(c == leaf.split(":", 1)[1] for leaf in leaves)]
    # 15 numbers per experiment; DVC shows no column for the [lo, hi] intervals, nor for weights_verified: null
    assert 4 * 15 + 2 * 14 <= len(metric_columns) <= 100, header
    assert header.index(next(c for c in header if c.endswith("test.acc"))) < header.index(
        next(c for c in header if c.endswith("train_seconds")))  # headline numbers first
    ignored = sh("git", "check-ignore", "-q", paths.model("face", "vgg16_finetune", SEED).as_posix(), cwd=path,
                 check=False)
    assert ignored.returncode == 0  # models are DVC-cached, not in git
    assert sh("git", "check-ignore", "-q", paths.metrics("face", "vgg16_finetune", SEED).as_posix(), cwd=path,
              check=False).returncode == 1  # metrics go to git


def test_exp_run_with_a_changed_lr_reruns_only_that_recipe(repo):
    path, env, _, output = repo  # HEAD~1: the baseline's results; HEAD and the workspace: after the exp run
    vgg = {t: paths.metrics(t, "vgg16_finetune", SEED) for t in TASKS}
    before = {t: json.loads(sh("git", "show", f"HEAD~1:{vgg[t].as_posix()}", cwd=path).stdout) for t in TASKS}
    assert stages_run(output) == SCANS | runs(SEED, ["resnet18_scratch"]) | {"report"}
    assert stale_stages(path, env) == {}
    for task in TASKS:  # untouched experiments keep their exact metrics
        assert json.loads((path / vgg[task]).read_text()) == before[task]
    diff = sh("dvc", "params", "diff", "HEAD~1", "--json", cwd=path, env=env).stdout
    assert json.loads(diff)["params.yaml"]["models.resnet18_scratch.lr"]["new"] == 0.01


def test_report_has_every_section_for_all_six_experiments_and_a_comparison_per_task(repo):
    path, _, _, _ = repo
    markdown = (path / "reports" / "report.md").read_text()
    for task in TASKS:
        comparison = markdown.split(f"### {task}: comparison\n\n")[1].split("\n\n")[0].splitlines()
        assert len(comparison) >= 3 and all(line.startswith("- ") for line in comparison)
        assert "Pretraining is not measured here: resnet18_pretrained started from resnet18-f37072fd.pth" in markdown
        verdict = markdown.split(f"## Task: {task}\n")[1].split(f"### {task}: comparison")[0]
        assert "McNemar's exact test): p = " in verdict or "Every model collapsed" in verdict
        assert "Which recipe is better is decided by the paired bootstrap of the test macro F1 difference" in verdict
        for recipe in RECIPES:
            assert f"### {task} / {recipe}\n" in markdown
            assert (path / "reports" / "figures" / f"{task}_{recipe}_gradients.png").is_file()
    for _, title in SECTIONS:
        assert markdown.count(f"#### {title}\n") == len(TASKS) * len(RECIPES)


def test_plots_diff_after_the_exp_run_shows_all_six_experiments(repo, tmp_path):
    path, env, _, _ = repo
    data = json.loads(sh("dvc", "plots", "diff", "HEAD~1", "--json", "-o", str(tmp_path / "json"),
                         cwd=path, env=env).stdout)["data"]
    sh("dvc", "plots", "diff", "HEAD~1", "-o", str(tmp_path / "html"), cwd=path, env=env)
    page = (tmp_path / "html" / "index.html").read_text()
    for task in TASKS:
        for recipe in RECIPES:
            values = data[f"{task}/{recipe}/loss"][0]["content"]["data"]["values"]
            field = f"seed{SEED}/history.csv::val/loss"
            before, after = ([v["val/loss"] for v in values if v["filename::field"] == field and v["rev"] == rev]
                             for rev in ("HEAD~1", "workspace"))
            assert len(before) == len(after) == 2 and (before != after) == (recipe == "resnet18_scratch")
            assert field in page and paths.evaluate_outputs(task, recipe, SEED)["predictions"].as_posix() in page
            run = f"{task}_{recipe}_seed{SEED}"
            for image in (f"zscore_{task}_{recipe}", f"{run}_gradients", f"{run}_parameters", f"{run}_reliability",
                          f"{run}_mistakes", f"{run}_saliency"):
                for rev in ("HEAD~1", "workspace"):
                    assert f"{rev}_plots_{image}.png" in page
    images = Images()
    images.feed(page)
    sources = set(images.sources)
    # 6 images of 6 experiments and each task's label-audit gallery, for both revisions
    assert len(sources) == (6 * 6 + 2) * 2 and all((tmp_path / "html" / src).is_file() for src in sources)


def test_adding_a_seed_reruns_only_its_runs_and_the_report(built_repo, stand_in_torch_home, tmp_path):
    """seeds [42] -> [42, 43] (what `dvc exp run -S 'seeds=[42,43]'` sets) after a repro of [42]: dvc status, what
    repro would run, names seed 43's run stages, the audits (they record each seed's split; seconds) and the report,
    nothing of seed 42's runs or of prepare (decoded once, whatever the seeds)."""
    path = copy_repo(built_repo[0], tmp_path / "repo")
    env = {**os.environ, "TORCH_HOME": str(stand_in_torch_home)}
    params = yaml.safe_load((path / "params.yaml").read_text())
    assert params["seeds"] == [SEED]
    params["seeds"] = [SEED, SEED + 1]
    (path / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    assert set(stale_stages(path, env)) == runs(SEED + 1) | AUDITS | {"report"}
