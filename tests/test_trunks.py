"""A frozen trunk's outputs shared between runs (facelab.data.trunks): the same numbers from the memo as computed now,
whichever rows came before; only the rows asked for are computed."""
import dataclasses

import numpy as np
import pytest
import torch
from torch import nn

from facelab.accel import CPU
from facelab.data import prepare
from facelab.data.batches import load_prepared
from facelab.data.trunks import encode, trunk_outputs
from facelab.params import AUGMENT_OFF
from facelab.training import loop


def small_trunk() -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(nn.Conv2d(3, 16, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2), nn.Conv2d(16, 32, 3, padding=1),
                         nn.ReLU(), nn.MaxPool2d(2))


def images(n: int) -> torch.Tensor:
    return torch.from_numpy(np.random.default_rng(1).integers(0, 256, (n, 32, 32, 3), dtype=np.uint8))


class Counting(nn.Module):
    """The trunk, counting the real images it is given (a padded chunk's blank rows are not counted)."""

    def __init__(self, trunk: nn.Module):
        super().__init__()
        self.trunk, self.seen = trunk, 0

    def forward(self, x):
        self.seen += int((x.flatten(2).std(2).amax(1) > 0).sum())  # a blank padding image is flat in every channel
        return self.trunk(x)


def test_an_images_output_does_not_depend_on_the_images_beside_it_in_its_chunk():
    trunk, pixels = small_trunk(), images(21)
    together = encode(trunk, pixels, 8, False, CPU)  # chunks 0-7, 8-15, 16-20 + 3 blank
    order = torch.tensor([20, 3, 11, 0, 7])
    apart = encode(trunk, pixels[order], 8, False, CPU)  # one padded chunk, other neighbours
    assert torch.equal(apart, together[order])
    assert torch.equal(encode(trunk, pixels, 8, True, CPU)[order], encode(trunk, pixels[order], 8, True, CPU))


def test_the_memo_computes_only_missing_rows_and_gives_the_numbers_computed_now(tmp_path):
    folder = tmp_path / "prepared"
    folder.mkdir()
    pixels = images(30)
    np.save(folder / "images.npy", pixels.numpy())
    trunk = Counting(small_trunk())
    first = np.arange(0, 20)
    got = trunk_outputs(trunk, pixels[first], 8, True, CPU, first, folder, tmp_path / "memo")
    assert trunk.seen == 20 and len(list((tmp_path / "memo").glob("*.pt"))) == 1
    second = np.array([25, 3, 19, 21, 0])  # 3, 19 and 0 known: two new rows
    again = trunk_outputs(trunk, pixels[second], 8, True, CPU, second, folder, tmp_path / "memo")
    assert trunk.seen == 22
    assert torch.equal(again, encode(trunk, pixels[second], 8, True, CPU))
    assert torch.equal(got, encode(trunk, pixels[first], 8, True, CPU))
    other_flip = trunk_outputs(trunk, pixels[second], 8, False, CPU, second, folder, tmp_path / "memo")
    assert torch.equal(other_flip, encode(trunk, pixels[second], 8, False, CPU))  # its own memo file
    assert len(list((tmp_path / "memo").glob("*.pt"))) == 2


@pytest.mark.e2e  # two VGG16 trainings: 20 s
def test_a_vgg_run_trains_the_same_with_another_seeds_memo_as_without_one(tiny_params, tmp_path, torch_home):
    """Seed 1 after seed 0 reads most of its trunk outputs from seed 0's memo: its history is identical to a run
    without a memo (a cold start computes the same numbers), so results never depend on which seeds ran before."""
    from facelab.data.batches import Inputs
    from facelab.models import build_model, frozen_trunk

    prepare.prepare_task("emotion", tiny_params.data["emotion"], tiny_params.data_seed, tmp_path / "emotion")
    recipe = dataclasses.replace(tiny_params.models["vgg16_finetune"], augment=dataclasses.replace(AUGMENT_OFF,
                                                                                                   hflip=True))
    fractions, batch = tiny_params.data["emotion"].split, tiny_params.train.eval_batch_size
    splits, classes = load_prepared(tmp_path / "emotion", 0, fractions)
    trunk, _ = frozen_trunk(build_model(recipe, len(classes)), recipe)
    for split, flips in (("train", True), ("val", False)):  # what seed 0's run puts into the memo
        Inputs(splits[split], trunk, batch, flips=flips, memo=tmp_path / "memo")
    splits, classes = load_prepared(tmp_path / "emotion", 1, fractions)
    with_memo = loop.train_loop("e/v", recipe, tiny_params.train, 1, splits, classes, trunk_memo=tmp_path / "memo")
    without = loop.train_loop("e/v", recipe, tiny_params.train, 1, splits, classes)
    assert with_memo.history.equals(without.history)
    assert len(list((tmp_path / "memo").glob("*.pt"))) == 2  # one file per flip, shared by both seeds
