"""Params checks that span keys: a task's source and its blocks, class names, splits, frozen modules."""
from __future__ import annotations

import dataclasses
import difflib

from facelab.errors import ParamsError
from facelab.params.schema import ARCH_MODULES, FER2013_LABELS, GENERATED_CLASSES, DataParams, Recipe

MAX_GENERATED_IMG_SIZE = 512  # the face generator draws at twice the size; larger would take minutes per image


def closest_key(key: str, allowed) -> str | None:
    """The likeliest intended key: a near spelling, else an abbreviation (lr for learning_rate)."""
    close = difflib.get_close_matches(key, list(allowed), n=1)
    if close:
        return close[0]
    letters = [name for name in allowed if name[:1] == key[:1] and _subsequence(name, key)]
    return letters[0] if letters else None


def _subsequence(short: str, long: str) -> bool:
    letters = iter(long)
    return all(char in letters for char in short)


def check_params(params) -> None:
    for task, data in params.data.items():
        check_data(task, data)
    for name, recipe in params.models.items():
        check_recipe(recipe, f"models.{name}")
    if params.train.exploding_grad_norm <= params.train.vanishing_grad_norm:
        raise ParamsError("train.exploding_grad_norm: must be above train.vanishing_grad_norm")


def check_recipe(recipe: Recipe, where: str) -> None:
    allowed = ARCH_MODULES[recipe.arch]
    for name in recipe.frozen:
        if name.split(".")[0] not in allowed:
            close = closest_key(name.split(".")[0], allowed)
            raise ParamsError(f"{where}.frozen: '{name}' is not a module of {recipe.arch}; "
                              f"{f'did you mean {close!r}? ' if close else ''}its top-level modules are {list(allowed)}")


def check_data(task: str, data: DataParams) -> None:
    where = f"data.{task}"
    if data.faces == "detect" and data.source == "generated":
        raise ParamsError(f"{where}.faces: 'detect' finds faces in photos; the generated faces are already face "
                          f"crops: use faces: none, or a folder/lfw/fer2013 source")
    wanted = {"folder": "a path to <path>/<class_name>/ folders",
              "fer2013": "a path to fer2013.csv or to the release folder holding train/ and test/"}
    if data.source in wanted and not data.path:
        raise ParamsError(f"{where}.path: source '{data.source}' needs {wanted[data.source]}")
    block = getattr(data, data.source, None)
    if data.source != "folder" and block is None:
        needs = {"generated": "n_images, n_identities, difficulty", "lfw": "lfw: {target: <Person_Name>, n_other: "
                 "<count>}", "fer2013": f"a class (or null) for each FER2013 label {list(FER2013_LABELS)}"}
        raise ParamsError(f"{where}.{data.source}: missing; source '{data.source}' needs {needs[data.source]}")
    {"generated": _generated, "lfw": _lfw, "fer2013": _fer2013}.get(data.source, lambda *_: None)(task, data, where)


def _generated(task: str, data: DataParams, where: str) -> None:
    if tuple(data.classes) != GENERATED_CLASSES[task]:
        raise ParamsError(f"{where}.classes: the generated {task} data has classes "
                          f"{list(GENERATED_CLASSES[task])}, got {list(data.classes)}")
    if data.img_size > MAX_GENERATED_IMG_SIZE:
        raise ParamsError(f"{where}.img_size: {data.img_size} is over {MAX_GENERATED_IMG_SIZE}, the largest the "
                          f"generated faces are drawn at; use {MAX_GENERATED_IMG_SIZE} or less")
    if task == "face" and data.generated.target_fraction is None:
        raise ParamsError(f"{where}.generated.target_fraction: missing; the face task needs the target's share, "
                          f"inside (0, 1)")


def _lfw(task: str, data: DataParams, where: str) -> None:
    if len(data.classes) != 2:
        raise ParamsError(f"{where}.classes: source 'lfw' is a binary task [others, target person], "
                          f"got {list(data.classes)}")


def _fer2013(task: str, data: DataParams, where: str) -> None:
    mapping = dataclasses.asdict(data.fer2013)
    for label, name in mapping.items():
        if name is not None and name not in data.classes:
            raise ParamsError(f"{where}.fer2013.{label}: '{name}' is not one of {list(data.classes)}")
    unfed = [name for name in data.classes if name not in mapping.values()]
    if unfed:
        raise ParamsError(f"{where}.fer2013: no FER2013 label maps to class(es) {unfed}; "
                          f"set one of {list(FER2013_LABELS)} to each")
