"""A trained model's two files: the weights (.pt, byte-identical for identical weights) and beside them its card
(.json, facelab.modelcard). load_trained is the one way every stage and command reads them back: card and weights
checked against each other (task, recipe, normalisation, every weight's shape), the model ready in eval mode."""
from __future__ import annotations

import io
import pickle
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch import nn

from facelab import paths
from facelab.errors import ModelFileError
from facelab.modelcard import ModelCard, Normalisation, read_card, rebuild_command
from facelab.models import IMAGENET_MEAN, IMAGENET_STD, architecture, trained_model
from facelab.params import Recipe, parse_recipe


@dataclass(frozen=True)
class TrainedModel:
    """A model file read back: its path, the card saved beside it, its weights, and the model holding them (eval
    mode). Everything about how to run it comes from the card's settings."""
    path: Path
    card: ModelCard
    state_dict: dict
    model: nn.Module
    recipe: Recipe

    @property
    def classes(self) -> tuple[str, ...]:
        return self.card.classes

    @property
    def img_size(self) -> int:
        return self.card.settings.img_size

    @property
    def tta_flip(self) -> bool:
        """Whether the model is scored with test-time flip averaging, as a run's scoring scores it."""
        return self.card.settings.tta_flip

    @property
    def faces(self) -> str:
        """The prepare stage's face setting the model was trained with."""
        return self.card.settings.faces

    @property
    def faces_fallback(self) -> str:
        """What the prepare stage did with a photo in which it found no face: skip it, or use its centre square."""
        return self.card.settings.faces_fallback

    @property
    def min_side(self) -> int:
        """The prepare stage's smallest usable image side: a smaller photo is skipped, as prepare skipped them."""
        return self.card.settings.min_side

    @property
    def temperature(self) -> float:
        """What the logits are divided by before softmax (train.calibrate), as a run's scoring does."""
        return self.card.results.temperature


def load_trained(task: str, recipe_name: str, path: Path | None = None, root: Path = Path("."),
                 seed: int | None = None) -> TrainedModel:
    """<root>/models/<task>/<recipe>/seed<seed>.pt (or `path`; with neither, the experiment's only trained run) and
    its .json, checked to fit together: the card's task and recipe, its normalisation, and every weight's shape
    against the recipe it names; the model in eval mode."""
    path = Path(path) if path is not None else run_model(task, recipe_name, seed, root)
    rebuild = rebuild_command(task, recipe_name, seed)
    if not path.is_file():
        raise ModelFileError(f"model file '{path}' does not exist; build it with {rebuild}")
    info = path.with_suffix(".json")
    card = read_card(info, rebuild)
    settings = card.settings
    if (settings.task, settings.recipe_name) != (task, recipe_name):
        raise ModelFileError(f"'{info}' is the model of task '{settings.task}', recipe '{settings.recipe_name}', "
                             f"not of --task {task} --recipe {recipe_name}; pass --task {settings.task} --recipe "
                             f"{settings.recipe_name}")
    check_normalisation(settings.normalisation, info)
    recipe = parse_recipe(settings.recipe, where=f"{info}: settings.recipe")
    state_dict = read_weights(path, rebuild)
    classes = len(settings.classes)
    problems = state_dict_mismatch(expected_shapes(recipe, classes), state_dict)
    if problems:
        raise ModelFileError(f"'{path}' does not fit the recipe saved beside it ({recipe.arch}, head_hidden "
                             f"{recipe.head_hidden}, {classes} classes): {'; '.join(problems)}; "
                             f"the .pt and .json must come from the same training: rebuild both with {rebuild}")
    return TrainedModel(path, card, state_dict, trained_model(recipe, classes, state_dict).eval(), recipe)


def run_model(task: str, recipe_name: str, seed: int | None, root: Path = Path(".")) -> Path:
    """The model file of one run: the given seed's, or without one the only run trained (several: pass a seed)."""
    if seed is not None:
        return paths.model(task, recipe_name, seed, root)
    runs = paths.trained_runs(task, recipe_name, root)
    if len(runs) == 1:
        return next(iter(runs.values()))
    folder = paths.model(task, recipe_name, 0, root).parent
    if not runs:
        raise ModelFileError(f"no trained model in '{folder}'; build one with "
                             f"{rebuild_command(task, recipe_name, None)}")
    raise ModelFileError(f"'{folder}' holds {len(runs)} trained runs (seeds {', '.join(map(str, runs))}); pass "
                         f"--seed to pick one (or --model with its .pt file)")


def imagenet_normalisation() -> Normalisation:
    """What facelab.data.inputs.to_input normalises with, as a card records it."""
    return Normalisation(mean=list(IMAGENET_MEAN), std=list(IMAGENET_STD))


def check_normalisation(normalisation: Normalisation, path: Path) -> None:
    """to_input normalises with the ImageNet statistics; a model trained with others would see shifted inputs."""
    wanted = imagenet_normalisation()
    if not all(len(saved) == len(want) and np.allclose(saved, want)
               for saved, want in ((normalisation.mean, wanted.mean), (normalisation.std, wanted.std))):
        raise ModelFileError(f"'{path}': normalisation {normalisation.model_dump()} is not the ImageNet mean/std "
                             f"{wanted.model_dump()} that facelab.data.inputs.to_input applies; this model needs the "
                             f"facelab version that trained it")


def expected_shapes(recipe: Recipe, num_classes: int) -> dict[str, tuple[int, ...]]:
    """Every state-dict key of the recipe's model and its shape, from a model built on the meta device (no memory)."""
    with torch.device("meta"):
        model = architecture(recipe, num_classes)
    return {key: tuple(value.shape) for key, value in model.state_dict().items()}


def state_dict_mismatch(expected: dict[str, tuple[int, ...]], state_dict: dict) -> list[str]:
    """What keeps the state dict from loading: missing and unexpected keys, and shapes that differ (a few of each)."""
    missing = [key for key in expected if key not in state_dict]
    extra = [key for key in state_dict if key not in expected]
    shapes = [f"{key} is {tuple(state_dict[key].shape)} in the file, {expected[key]} for the recipe"
              for key in expected if key in state_dict and tuple(state_dict[key].shape) != expected[key]]
    problems = []
    for what, items in (("missing key(s)", missing), ("unexpected key(s)", extra), ("shape(s) differ", shapes)):
        if items:
            problems.append(f"{len(items)} {what}: " + ", ".join(items[:3]) + (" ..." if len(items) > 3 else ""))
    return problems


def weights_bytes(state_dict: dict) -> bytes:
    """torch.save into memory: a file path would put its (temporary, random) name into the archive, so equal
    weights would give files with different hashes and DVC would rerun every stage after them."""
    buffer = io.BytesIO()
    torch.save(state_dict, buffer)
    return buffer.getvalue()


def read_weights(path: Path, rebuild: str) -> dict:
    """Tensors only (weights_only): a model file never runs code when it is loaded."""
    try:
        state_dict = torch.load(path, map_location="cpu", weights_only=True)
    except (OSError, RuntimeError, EOFError, ValueError, pickle.UnpicklingError) as error:
        raise ModelFileError(f"'{path}' cannot be read as a PyTorch state dict ({error}); rebuild it with "
                             f"{rebuild}") from error
    if not isinstance(state_dict, dict) or not all(isinstance(v, torch.Tensor) for v in state_dict.values()):
        raise ModelFileError(f"'{path}' holds a {type(state_dict).__name__}, not a state dict of tensors; "
                             f"rebuild it with {rebuild}")
    return state_dict
