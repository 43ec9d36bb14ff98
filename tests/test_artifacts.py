"""The models as DVC artifacts: dvc.yaml names all six, and `dvc artifacts get` returns a trained model by name."""
import filecmp
import sys

import pytest
import yaml

from facelab import paths
from facelab.params import RECIPES, TASKS
from tests.conftest import ROOT, copy_repo, sh


def artifact_name(task: str, recipe: str) -> str:
    return f"{task}-{recipe.replace('_', '-')}"


def test_dvc_yaml_declares_every_model_as_an_artifact():
    """Each experiment's artifact is its run of the first seed in params.yaml (dvc.yaml interpolates it)."""
    artifacts = yaml.safe_load((ROOT / "dvc.yaml").read_text())["artifacts"]
    expected = {artifact_name(t, r): paths.model(t, r, 0).with_name("seed${seeds[0]}.pt").as_posix()
                for t in TASKS for r in RECIPES}
    assert {name: a["path"] for name, a in artifacts.items()} == expected
    for name, artifact in artifacts.items():
        task, recipe = next((t, r) for t in TASKS for r in RECIPES if artifact_name(t, r) == name)
        assert artifact["type"] == "model" and artifact["labels"] == [task, recipe]
        assert artifact["desc"].startswith(f"{task} (")


@pytest.mark.e2e
def test_dvc_artifacts_get_downloads_the_trained_model(tmp_path, built_repo):
    repo = copy_repo(built_repo[0], tmp_path / "repo")  # the tiny pipeline's trained models, committed
    get = ("dvc", "artifacts", "get", ".", "emotion-resnet18-scratch", "-o", str(tmp_path / "got.pt"))
    untagged = sh(*get, cwd=repo, check=False)
    assert untagged.returncode != 0 and "Unable to find artifact 'emotion-resnet18-scratch'" in untagged.stderr
    # DVC finds an artifact's revision by its version tag (GTO's <name>@v<semver>, as `gto register` writes it)
    sh("git", "tag", "-a", "emotion-resnet18-scratch@v0.1.0", "-m", "Registering artifact", cwd=repo)
    assert "Downloaded 1 file(s)" in sh(*get, cwd=repo).stdout
    seed = yaml.safe_load((repo / "params.yaml").read_text())["seeds"][0]
    assert filecmp.cmp(tmp_path / "got.pt", paths.model("emotion", "resnet18_scratch", seed, repo), shallow=False)
    show = "import dvc.api; print(dvc.api.artifacts_show('emotion-resnet18-scratch'))"
    shown = sh(sys.executable, "-c", show, cwd=repo)
    assert f"'path': 'models/emotion/resnet18_scratch/seed{seed}.pt'" in shown.stdout
