import dataclasses

import pytest
import torch

from facelab.data.augment import Draws, apply, draw, erase_mask
from facelab.data.batches import Inputs, SplitData, imagenet_stats, to_input
from facelab.errors import ParamsError
from facelab.evaluation.forward import forward_logits
from facelab.params import AUGMENT_OFF, Augment, augmentation, parse_params
from facelab.training.loop import Progress, applied_augmentation, improves, training_loss

FULL = Augment(hflip=True, crop_scale=(0.5, 0.9), rotation=15, brightness=0.3, contrast=0.3, erasing=0.5)


def images(n=6, size=16, seed=0):
    return torch.randint(0, 256, (n, size, size, 3), generator=torch.Generator().manual_seed(seed), dtype=torch.uint8)


def test_the_same_seed_draws_the_same_epoch_and_another_seed_does_not():
    a, b = (draw(FULL, 50, torch.Generator().manual_seed(3)) for _ in range(2))
    c = draw(FULL, 50, torch.Generator().manual_seed(4))
    for field in ("flip", "theta", "gain", "contrast", "erase"):
        assert torch.equal(getattr(a, field), getattr(b, field))
        assert not torch.equal(getattr(a, field), getattr(c, field))


def test_draws_stay_inside_the_configured_ranges():
    d = draw(FULL, 4000, torch.Generator().manual_seed(0))
    assert d.theta is not None and d.gain is not None and d.contrast is not None and d.erase is not None
    area = torch.linalg.det(d.theta[:, :, :2].double()).abs()  # width x height of the crop, rotation aside
    assert area.min() >= 0.5 - 1e-6 and area.max() <= 0.9 + 1e-6
    assert d.gain.min() >= 0.7 and d.gain.max() <= 1.3 and d.contrast.min() >= 0.7 and d.contrast.max() <= 1.3
    erased = (d.erase[:, 1] > d.erase[:, 0])
    assert 0.45 < erased.float().mean() < 0.55  # erasing: 0.5
    box_area = (d.erase[:, 1] - d.erase[:, 0]) * (d.erase[:, 3] - d.erase[:, 2])
    assert box_area[erased].min() >= 0.02 - 1e-6 and box_area[erased].max() <= 0.33 + 1e-6
    angles = torch.rad2deg(torch.atan2(d.theta[:, 1, 0], d.theta[:, 0, 0]))
    assert angles.abs().max() <= 15 + 1e-3 and angles.abs().max() > 14  # uniform in [-15, 15]


def test_only_what_is_switched_on_is_drawn():
    d = draw(dataclasses.replace(AUGMENT_OFF, hflip=False, erasing=0.1), 10, torch.Generator().manual_seed(0))
    assert d.flip is None and d.theta is None and d.gain is None and d.contrast is None and d.erase is not None
    assert not draw(dataclasses.replace(AUGMENT_OFF, hflip=True), 10, torch.Generator()).pixels


def test_identity_draws_give_exactly_the_unaugmented_input():
    x = images()
    n = len(x)
    identity = Draws(theta=torch.tensor([[1.0, 0, 0], [0, 1.0, 0]]).repeat(n, 1, 1), gain=torch.ones(n),
                     contrast=torch.ones(n), erase=torch.zeros(n, 4))
    out = apply(x.permute(0, 3, 1, 2).float() / 255, identity, *imagenet_stats(torch.device("cpu")))
    torch.testing.assert_close(out, to_input(x), atol=1e-5, rtol=0)


def test_a_half_turn_is_the_image_upside_down_and_mirrored():
    x = images()
    half_turn = Draws(theta=torch.tensor([[-1.0, 0, 0], [0, -1.0, 0]]).repeat(len(x), 1, 1))
    out = apply(x.permute(0, 3, 1, 2).float() / 255, half_turn, *imagenet_stats(torch.device("cpu")))
    torch.testing.assert_close(out, to_input(x).flip(-1).flip(-2), atol=1e-5, rtol=0)


def test_brightness_is_clipped_to_white_and_erasing_sets_the_mean():
    x = torch.full((1, 4, 4, 3), 200, dtype=torch.uint8)
    mean, std = imagenet_stats(torch.device("cpu"))
    out = apply(x.permute(0, 3, 1, 2).float() / 255, Draws(gain=torch.tensor([2.0]),
                                                            erase=torch.tensor([[0.0, 0.5, 0.0, 0.5]])), mean, std)
    white = ((1 - mean) / std).view(3)
    assert torch.equal(out[0, :, :2, :2], torch.zeros(3, 2, 2))  # erased: the normalised mean
    torch.testing.assert_close(out[0, :, 3, 3], white)


def test_the_erase_mask_covers_the_pixels_whose_centres_are_inside():
    mask = erase_mask(torch.tensor([[0.0, 0.5, 0.25, 1.0], [0.0, 0.0, 0.0, 0.0]]), 4, 4)
    assert mask.shape == (2, 1, 4, 4)
    assert mask[0, 0].int().tolist() == [[0, 1, 1, 1], [0, 1, 1, 1], [0, 0, 0, 0], [0, 0, 0, 0]]
    assert not mask[1].any()


def test_augmented_batches_keep_the_layout_and_change_the_pixels():
    split = SplitData(images(8, 32), torch.zeros(8, dtype=torch.int64))
    index = torch.arange(8)
    d = draw(FULL, 8, torch.Generator().manual_seed(1))
    batch = Inputs(split, None, 8, flips=True).batch(index, d)
    assert batch.shape == (8, 3, 32, 32) and batch.is_contiguous()
    assert not torch.allclose(batch, to_input(split.images))


def test_a_cached_trunk_gets_only_the_flip_and_says_so(tiny_params):
    from facelab.training.loop import frozen_note
    assert applied_augmentation(FULL, cached=True) == dataclasses.replace(AUGMENT_OFF, hflip=True)
    assert applied_augmentation(FULL, cached=False) == FULL
    note = frozen_note(tiny_params.models["vgg16_finetune"], torch.nn.Identity(), FULL, tiny_params.train)
    assert "augment crop_scale, rotation, brightness, contrast, erasing not applied" in note
    mixed = dataclasses.replace(tiny_params.train, mixup=0.2, cutmix=1.0)  # they blend images, not trunk outputs
    note = frozen_note(tiny_params.models["vgg16_finetune"], torch.nn.Identity(), FULL, mixed)
    assert "augment crop_scale, rotation, brightness, contrast, erasing, mixup, cutmix not applied" in note


def test_balanced_class_weights_and_label_smoothing_reach_the_loss(tiny_params):
    settings = dataclasses.replace(tiny_params.train, class_weights="balanced", label_smoothing=0.2)
    loss = training_loss(settings, torch.tensor([0, 0, 0, 1]), 2, torch.device("cpu"))
    torch.testing.assert_close(loss.weight, torch.tensor([4 / 6, 2.0]))
    assert loss.label_smoothing == 0.2
    plain = training_loss(dataclasses.replace(settings, class_weights="none", label_smoothing=0.0),
                          torch.tensor([0, 1]), 2, torch.device("cpu"))
    assert plain.weight is None and plain.label_smoothing == 0


def test_selection_by_macro_f1_breaks_ties_by_the_lower_loss():
    kept = Progress(best_loss=0.5, best_f1=0.7)
    assert improves({"loss": 0.9, "macro_f1": 0.8}, kept, "val_macro_f1")
    assert not improves({"loss": 0.1, "macro_f1": 0.6}, kept, "val_macro_f1")
    assert improves({"loss": 0.4, "macro_f1": 0.7}, kept, "val_macro_f1")
    assert not improves({"loss": 0.6, "macro_f1": 0.7}, kept, "val_macro_f1")
    assert improves({"loss": 0.4, "macro_f1": 0.1}, kept, "val_loss")


def test_test_time_flip_averages_the_logits_of_an_image_and_its_mirror():
    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Conv2d(3, 2, 3), torch.nn.Flatten(), torch.nn.LazyLinear(3))
    split = SplitData(images(5, 16), torch.zeros(5, dtype=torch.int64))
    x = to_input(split.images)
    model(x)
    expected = (model(x) + model(x.flip(-1))) / 2
    got = forward_logits(model, Inputs(split, None, 2, flips=False), 2, tta_flip=True)
    torch.testing.assert_close(got, expected.detach())
    assert not torch.allclose(forward_logits(model, Inputs(split, None, 2, flips=False), 2), got)


def test_a_recipe_overrides_only_the_augment_keys_it_names(tiny_raw):
    tiny_raw["models"]["resnet18_scratch"]["augment"] = {"rotation": 30}
    params = parse_params(tiny_raw)
    base = params.train.augment
    own = augmentation(params.models["resnet18_scratch"], params.train)
    assert own == dataclasses.replace(base, rotation=30.0)
    assert augmentation(params.models["resnet18_pretrained"], params.train) == base


@pytest.mark.parametrize("key, value, message", [
    ("crop_scale", [0.9, 0.5],
     r"train.augment.crop_scale: \[0.9, 0.5\] must be \[low, high\] with 0 < low <= high <= 1"),
    ("crop_scale", [0.5], r"train.augment.crop_scale: \[0.5\] must be \[low, high\]"),
    ("rotation", 200, r"train.augment.rotation: 200.0 must be inside \[0, 180\] degrees"),
    ("brightness", 1.5, r"train.augment.brightness: 1.5 must be inside \[0, 1\)"),
    ("erasing", -0.1, r"train.augment.erasing: -0.1 must be inside \[0, 1\]"),
    ("flip", True, r"train.augment: unknown key 'flip'; did you mean 'hflip'\?"),
])
def test_bad_augment_values_are_named(tiny_raw, key, value, message):
    tiny_raw["train"]["augment"][key] = value
    with pytest.raises(ParamsError, match=message):
        parse_params(tiny_raw)


@pytest.mark.parametrize("key, value, message", [
    ("select_by", "val_acc", r"train.select_by: 'val_acc' is not one of \['val_loss', 'val_macro_f1'\]"),
    ("class_weights", "auto", r"train.class_weights: 'auto' is not one of \['none', 'balanced'\]"),
    ("label_smoothing", 1.0, r"train.label_smoothing: 1.0 must be inside \[0, 1\)"),
])
def test_bad_selection_and_loss_settings_are_named(tiny_raw, key, value, message):
    tiny_raw["train"][key] = value
    with pytest.raises(ParamsError, match=message):
        parse_params(tiny_raw)
