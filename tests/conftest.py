"""Shared tiny fixtures: shrunken params (32 px, 1-2 epochs, W&B off), stand-in ImageNet weights, temp repos."""
from __future__ import annotations

import contextlib
import copy
import os
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

from facelab.params import parse_params, raw_params

ROOT = Path(__file__).resolve().parents[1]
REAL_DATA = ROOT.parent / "shared" / "data" / "real"


@contextlib.contextmanager
def torch_state():
    """Training sets torch's thread count and deterministic mode for the whole process (seed_everything); this puts
    them back afterwards."""
    import torch
    saved = (torch.get_num_threads(), torch.are_deterministic_algorithms_enabled(),
             torch.is_deterministic_algorithms_warn_only_enabled(),
             # a property of torch's module object that its stubs lack
             torch.utils.deterministic.fill_uninitialized_memory,  # type: ignore[attr-defined]
             torch.backends.cudnn.benchmark)
    try:
        yield
    finally:
        torch.set_num_threads(saved[0])
        torch.use_deterministic_algorithms(saved[1], warn_only=saved[2])
        torch.utils.deterministic.fill_uninitialized_memory = saved[3]  # type: ignore[attr-defined]  # as above
        torch.backends.cudnn.benchmark = saved[4]


@pytest.fixture(autouse=True)
def torch_globals():
    """torch's process-wide settings put back after each test (torch_state), so no test depends on which ran
    before it on the same worker; a module's fixture that trains wraps its training in torch_state too."""
    with torch_state():
        yield


def tiny_raw_params() -> dict:
    """params.yaml shrunk to seconds per stage: one seed, 32 px, ~100 images a task, 1-2 epochs, W&B disabled."""
    raw = raw_params(ROOT / "params.yaml")
    raw["seeds"] = [raw["data_seed"]]  # one run per experiment: the e2e repos stay as small as before seeds
    for task, n_images in (("face", 120), ("emotion", 90)):
        raw["data"][task]["img_size"] = 32
        raw["data"][task]["generated"].update(n_images=n_images, n_identities=8)
    for recipe in raw["models"].values():
        recipe.update(epochs=2, batch_size=16)
    raw["models"]["vgg16_finetune"]["head_hidden"] = 32
    raw["train"]["threads"] = 1
    raw["train"]["device"] = "cpu"  # exact-equality tests must never meet the CUDA path
    raw["wandb"]["mode"] = "disabled"
    return raw


@pytest.fixture
def tiny_raw() -> dict:
    return copy.deepcopy(tiny_raw_params())


@pytest.fixture
def tiny_params(tiny_raw):
    return parse_params(tiny_raw)


TINY_RECIPE, TINY_SEED = "resnet18_scratch", 42  # the tiny models': train_tiny's


def train_tiny(task: str, root, raw: dict | None = None) -> None:
    """prepare, train and save one tiny resnet18_scratch model under root, as the two stages do; raw: the params
    (tiny_raw_params() when None)."""
    import dataclasses

    from facelab import paths
    from facelab.data import prepare
    from facelab.data.batches import data_split, load_prepared
    from facelab.files import read_json
    from facelab.modelcard import WeightsProvenance
    from facelab.models import trained_model, weights_provenance
    from facelab.training import experiment as train
    from facelab.training import loop
    params = parse_params(tiny_raw_params() if raw is None else raw)
    prepared = paths.prepared(task, root)
    recipe = dataclasses.replace(params.models[TINY_RECIPE], epochs=1)  # one epoch: these tests use a model, any model
    prepare.prepare_task(task, params.data[task], params.data_seed, prepared)
    splits, classes = load_prepared(prepared, TINY_SEED, params.data[task].split)
    result = loop.train_loop(f"{task}/{TINY_RECIPE}", recipe, params.train, TINY_SEED, splits, classes)
    settings = train.model_settings(task, TINY_RECIPE, recipe, params.train, TINY_SEED,
                                    data_split(splits, params.data[task].split, classes), classes,
                                    read_json(prepared / "classes.json"),
                                    WeightsProvenance(**weights_provenance(recipe)))
    calibration = train.fit_calibration(trained_model(recipe, len(classes), result.state_dict), splits["val"],
                                        params.train)
    train.save_outputs(result, settings, calibration, paths.train_outputs(task, TINY_RECIPE, TINY_SEED, root))


@pytest.fixture(scope="session")
def tiny_models(tmp_path_factory):
    """copy(task, root): puts train_tiny's prepared data and model for task (default params) under root. Each
    task's is trained once per test process, then copied, so modules that each need one do not each train it
    (the training is deterministic: a copy is what training again would write)."""
    done: dict[str, Path] = {}

    def copy(task: str, root: Path) -> None:
        if task not in done:
            done[task] = tmp_path_factory.mktemp(f"tiny-{task}")
            with torch_state():
                train_tiny(task, done[task])
        shutil.copytree(done[task], root, dirs_exist_ok=True)
    return copy


def splits_of(folder: Path, seed: int, fractions) -> dict[str, str]:
    """Each file of a prepared folder and the split one run (seed, data.<task>.split) puts it in."""
    from facelab.data.batches import prepared_split, split_files
    return {name: split for split, names in split_files(folder, prepared_split(folder, seed, fractions)).items()
            for name in names}


def split_counts(folder: Path, seed: int, fractions) -> dict[str, dict[str, int]]:
    """Images per split and class of one run's split of a prepared folder, as its model card records them."""
    from facelab.data.batches import data_split, load_prepared
    splits, classes = load_prepared(folder, seed, fractions)
    return data_split(splits, fractions, classes).counts


def write_stand_in_weights(torch_home: Path) -> None:
    """Random-init state dicts of the right shapes where torch.hub caches the ImageNet files.

    This is how to run the pretrained recipes with no network: the real files (same names)
    go in the same folder."""
    import torch
    from torchvision import models

    from facelab.models import weights_file
    old = os.environ.get("TORCH_HOME")
    os.environ["TORCH_HOME"] = str(torch_home)
    try:
        for arch in ("resnet18", "vgg16"):
            path = weights_file(arch)
            path.parent.mkdir(parents=True, exist_ok=True)
            torch.manual_seed(0)
            torch.save(models.get_model(arch, weights=None).state_dict(), path)
    finally:
        if old is None:
            os.environ.pop("TORCH_HOME")
        else:
            os.environ["TORCH_HOME"] = old


def run_folder(tmp_path_factory) -> Path:
    """A folder of this pytest run that every xdist worker shares (their base temps' parent). Without xdist, the
    run's own base temp: the parent would be pytest's folder of every earlier run, with their stale repos."""
    base = tmp_path_factory.getbasetemp()
    return base.parent if os.environ.get("PYTEST_XDIST_WORKER") else base


@pytest.fixture(scope="session")
def stand_in_torch_home(tmp_path_factory) -> Path:
    """Stand-in ImageNet files (VGG16's is 528 MB), written once per run and shared by the xdist workers."""
    from filelock import FileLock
    common = run_folder(tmp_path_factory)
    home = common / "torch_home"
    with FileLock(str(common / "torch_home.lock")):
        if not (home / "done").is_file():
            write_stand_in_weights(home)
            (home / "done").touch()
    return home


@pytest.fixture
def torch_home(stand_in_torch_home, monkeypatch) -> Path:
    monkeypatch.setenv("TORCH_HOME", str(stand_in_torch_home))
    return stand_in_torch_home


def sh(*args, cwd: Path, env: dict | None = None, check: bool = True) -> subprocess.CompletedProcess:
    result = subprocess.run(list(args), cwd=cwd, env=env, capture_output=True, text=True)
    if check and result.returncode != 0:
        raise AssertionError(f"{' '.join(args)} failed ({result.returncode}):\n"
                             f"{result.stdout[-4000:]}\n{result.stderr[-4000:]}")
    return result


def stale_stages(path: Path, env: dict | None = None, *targets: str) -> dict:
    """What `dvc status [targets]` reports, by stage, leaving out the scan stages it always reports ("always
    changed": they list the photo folders on every run)."""
    import json
    status = json.loads(sh("dvc", "status", *targets, "--json", cwd=path, env=env).stdout or "{}")
    return {stage: changes for stage, changes in status.items() if changes != ["always changed"]}


def make_repo(path: Path, raw_params: dict) -> Path:
    """A git + DVC repo holding this project's pipeline and the given params, committed."""
    path.mkdir(parents=True, exist_ok=True)
    for package in ("stages", "facelab"):
        shutil.copytree(ROOT / package, path / package, ignore=shutil.ignore_patterns("__pycache__"))
    for name in ("dvc.yaml", ".gitignore"):
        shutil.copy(ROOT / name, path / name)
    (path / "params.yaml").write_text(yaml.safe_dump(raw_params, sort_keys=False))
    sh("git", "init", "-q", "-b", "main", cwd=path)
    sh("git", "config", "user.email", "test@example.com", cwd=path)
    sh("git", "config", "user.name", "test", cwd=path)
    sh("dvc", "init", "-q", cwd=path)
    sh("dvc", "config", "core.analytics", "false", cwd=path)
    sh("git", "add", "-A", cwd=path)
    sh("git", "commit", "-qm", "init", cwd=path)
    return path


@pytest.fixture(scope="session")
def built_repo(tmp_path_factory, stand_in_torch_home) -> tuple[Path, str]:
    """The tiny pipeline built once for the whole run (one `dvc repro`, results committed), shared by the xdist
    workers through a lock in their common temp folder; returns (repo, the repro's output). Tests that change a
    repo take a copy (copy_repo), never this one."""
    from filelock import FileLock
    common = run_folder(tmp_path_factory)
    path, log = common / "built" / "repo", common / "built" / "repro.log"
    with FileLock(str(common / "built.lock")):
        if not (path / "dvc.lock").is_file():
            shutil.rmtree(path.parent, ignore_errors=True)
            make_repo(path, tiny_raw_params())
            env = {**os.environ, "TORCH_HOME": str(stand_in_torch_home)}
            output = sh("dvc", "repro", cwd=path, env=env).stdout
            sh("git", "add", "-A", cwd=path)
            sh("git", "commit", "-qm", "baseline results", cwd=path)
            log.write_text(output)
    return path, log.read_text()


@pytest.fixture(scope="session")
def changed_repo(tmp_path_factory, built_repo, stand_in_torch_home) -> tuple[Path, str]:
    """The built repo after `dvc exp run -S models.resnet18_scratch.lr=0.01`, its results committed on top of the
    baseline, built once per run; returns (repo, the exp run's output). Its DVC cache and run cache hold the results
    of both learning rates, as a CI runner's restored cache does."""
    from filelock import FileLock
    common = run_folder(tmp_path_factory)
    path, log = common / "changed" / "repo", common / "changed" / "exp_run.log"
    with FileLock(str(common / "changed.lock")):
        if not log.is_file():
            shutil.rmtree(path.parent, ignore_errors=True)
            copy_repo(built_repo[0], path)
            env = {**os.environ, "TORCH_HOME": str(stand_in_torch_home)}
            output = sh("dvc", "exp", "run", "-S", "models.resnet18_scratch.lr=0.01", cwd=path, env=env).stdout
            sh("git", "add", "-A", cwd=path)
            sh("git", "commit", "-qm", "resnet18_scratch lr 0.01", cwd=path)
            log.write_text(output)
    return path, log.read_text()


def copy_repo(built: Path, to: Path) -> Path:
    """A private copy of a built repo: its git history, DVC cache and outputs. The DVC cache's files are linked, not
    copied (300 MB of models): DVC names them by content and never writes into one, it adds new files."""
    cache = built / ".dvc" / "cache"

    def copy(source: str, target: str) -> None:
        if Path(source).is_relative_to(cache):
            os.link(source, target)
        else:
            shutil.copy2(source, target)
    shutil.copytree(built, to, symlinks=True, copy_function=copy)
    return to


BUILDER = "test_pipeline.py"  # its first test builds the shared repos
# The files that take longest (seconds of one worker in a full run here), longest first: within each group below
# they are handed out first, so that no worker is left running a long file alone at the end while the other idles.
LONGEST = ("test_queue.py",  # ~85, on the built repo
           "test_scan.py", "test_distributed.py", "test_train_stage.py", "test_detect.py", "test_review.py",  # 25-85
           "test_predict.py", "test_plots_diff.py", "test_prepare.py", "test_train.py", "test_accel.py",  # 10-25
           "test_prepare_kill.py", "test_stage_errors.py", "test_report.py", "test_recipes.py")


def pytest_collection_modifyitems(items):
    """Files in three groups: the pipeline tests first, so one worker starts building the shared repos at once (one
    core, a few minutes); then every other file, end-to-end ones (a test marked e2e) before quick ones, longest
    first; the files on the shared repos last, longest first, so the other worker runs everything else meanwhile
    instead of waiting. Needs xdist's --no-loadscope-reorder (pyproject.toml), which keeps this order."""
    def group(item) -> int:
        if item.path.name == BUILDER:
            return 0
        if {"built_repo", "changed_repo"} & set(getattr(item, "fixturenames", ())):
            return 3
        return 1 if item.get_closest_marker("e2e") else 2
    # xdist hands out whole files (--dist loadfile): a file waits for the shared repos if any of its tests uses
    # them, else it goes with its earliest test
    groups: dict[Path, set[int]] = {}
    for item in items:
        groups.setdefault(item.path, set()).add(group(item))
    by_file = {path: 3 if 3 in found else min(found) for path, found in groups.items()}
    rank = {name: i for i, name in enumerate(LONGEST)}
    items.sort(key=lambda item: (by_file[item.path], rank.get(item.path.name, len(LONGEST))))
