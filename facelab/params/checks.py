"""Params checks that span keys: a task's source and its blocks, class names, splits, frozen modules."""
from __future__ import annotations

import dataclasses
import difflib
import unicodedata

from facelab.errors import ParamsError
from facelab.params.schema import ARCH_MODULES, FER2013_LABELS, GENERATED_CLASSES, Augment, DataParams, Recipe

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


def plain_folder_name(name: str) -> bool:
    """A name that is one folder under its parent: not empty, not '.' or '..', no separator."""
    return bool(name) and name not in (".", "..") and "/" not in name and "\\" not in name


def one_of(value, allowed, where: str) -> None:
    if value not in allowed:
        raise ParamsError(f"{where}: '{value}' is not one of {list(allowed)}")


def check_recipe(recipe: Recipe, where: str) -> None:
    allowed = ARCH_MODULES[recipe.arch]
    for name in recipe.frozen:
        if name.split(".")[0] not in allowed:
            close = closest_key(name.split(".")[0], allowed)
            raise ParamsError(f"{where}.frozen: '{name}' is not a module of {recipe.arch}; "
                              f"{f'did you mean {close!r}? ' if close else ''}its top-level modules are {list(allowed)}")
    if recipe.augment is not None:
        check_augment(recipe.augment, f"{where}.augment")


def check_augment(augment: Augment, where: str) -> None:
    scale = list(augment.crop_scale)
    if len(scale) != 2 or not 0 < scale[0] <= scale[1] <= 1:
        raise ParamsError(f"{where}.crop_scale: {scale} must be [low, high] with 0 < low <= high <= 1 "
                          f"(the share of the image's area a crop keeps; [1.0, 1.0]: no crop)")


def check_data(task: str, data: DataParams) -> None:
    where = f"data.{task}"
    for name in data.classes:
        if not plain_folder_name(name):
            raise ParamsError(f"{where}.classes: '{name}' is not a plain folder name; a class name is the name of "
                              f"a folder under data.{task}.path, without '/', '\\', '.' or '..'")
    if len({unicodedata.normalize("NFC", c) for c in data.classes}) != len(data.classes) or len(data.classes) < 2:
        raise ParamsError(f"{where}.classes: need at least 2 distinct class names, got {list(data.classes)}")
    total = data.split.train + data.split.val + data.split.test
    if abs(total - 1) > 1e-6:
        raise ParamsError(f"{where}.split: train + val + test = {total:g}; they must add up to 1")
    if data.faces == "detect" and data.source == "generated":
        raise ParamsError(f"{where}.faces: 'detect' finds faces in photos; the generated faces are already face "
                          f"crops: use faces: none, or a folder/lfw/fer2013 source")
    if data.source in ("folder", "fer2013") and not data.path:
        wanted = {"folder": "a path to <path>/<class_name>/ folders",
                  "fer2013": "a path to fer2013.csv or to the release folder holding train/ and test/"}
        raise ParamsError(f"{where}.path: source '{data.source}' needs {wanted[data.source]}")
    {"generated": _generated, "lfw": _lfw, "fer2013": _fer2013}.get(data.source, lambda *_: None)(task, data, where)


def _generated(task: str, data: DataParams, where: str) -> None:
    if tuple(data.classes) != GENERATED_CLASSES[task]:
        raise ParamsError(f"{where}.classes: the generated {task} data has classes "
                          f"{list(GENERATED_CLASSES[task])}, got {list(data.classes)}")
    if data.img_size > MAX_GENERATED_IMG_SIZE:
        raise ParamsError(f"{where}.img_size: {data.img_size} is over {MAX_GENERATED_IMG_SIZE}, the largest the "
                          f"generated faces are drawn at; use {MAX_GENERATED_IMG_SIZE} or less")
    if data.generated is None:
        raise ParamsError(f"{where}.generated: missing; source 'generated' needs n_images, n_identities, difficulty")
    if task == "face" and data.generated.target_fraction is None:
        raise ParamsError(f"{where}.generated.target_fraction: missing; the face task needs the target's share, "
                          f"inside (0, 1)")


def _lfw(task: str, data: DataParams, where: str) -> None:
    if data.lfw is None:
        raise ParamsError(f"{where}.lfw: missing; source 'lfw' needs lfw: {{target: <Person_Name>, n_other: <count>}}")
    if len(data.classes) != 2:
        raise ParamsError(f"{where}.classes: source 'lfw' is a binary task [others, target person], "
                          f"got {list(data.classes)}")
    if not data.lfw.target or "/" in data.lfw.target:
        raise ParamsError(f"{where}.lfw.target: '{data.lfw.target}' is not an LFW folder name such as George_W_Bush")


def _fer2013(task: str, data: DataParams, where: str) -> None:
    if data.fer2013 is None:
        raise ParamsError(f"{where}.fer2013: missing; source 'fer2013' needs a class (or null) for each "
                          f"FER2013 label {list(FER2013_LABELS)}")
    mapping = dataclasses.asdict(data.fer2013)
    for label, name in mapping.items():
        if name is not None:
            one_of(name, data.classes, f"{where}.fer2013.{label}")
    unfed = [name for name in data.classes if name not in mapping.values()]
    if unfed:
        raise ParamsError(f"{where}.fer2013: no FER2013 label maps to class(es) {unfed}; "
                          f"set one of {list(FER2013_LABELS)} to each")
