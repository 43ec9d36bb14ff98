"""A stage that fails on a user error ends `dvc repro` with facelab's one `error:` line: no torchrun or Python
traceback buries it (here: the ImageNet weights file is missing and cannot be downloaded)."""
import os

import pytest

from facelab import paths
from tests.conftest import copy_repo, sh, tiny_raw_params

SEED = tiny_raw_params()["seeds"][0]  # the tiny repo trains one seed

pytestmark = pytest.mark.e2e  # runs dvc repro


def test_a_missing_weights_file_ends_dvc_repro_with_one_error_line(built_repo, tmp_path):
    path = copy_repo(built_repo[0], tmp_path / "repo")
    empty = tmp_path / "torch_home"  # no ImageNet files, and downloads go to a closed port
    env = {**os.environ, "TORCH_HOME": str(empty), "HTTPS_PROXY": "http://127.0.0.1:9", "https_proxy": "http://127.0.0.1:9"}
    result = sh("dvc", "repro", "--force", "--single-item", f"run@emotion-resnet18_pretrained-{SEED}", cwd=path,
                env=env, check=False)
    assert result.returncode != 0
    lines = result.stderr.strip().splitlines()
    assert "Traceback" not in result.stderr and "ChildFailedError" not in result.stderr
    ours = [line for line in lines if line.startswith("error: ")]
    assert len(ours) == 1 and ours[0].startswith("error: ImageNet weights for resnet18 are not available: "
                                                 "'resnet18-f37072fd.pth' is not in ")
    assert len(lines) <= 3, lines  # facelab's line, then DVC's own one-line summary of the failed stage
    assert not paths.model("emotion", "resnet18_pretrained", SEED, path).exists()
