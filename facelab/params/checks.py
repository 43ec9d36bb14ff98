"""Params checks that need the task or a later block: a task's source, its classes and its block."""
from __future__ import annotations

import dataclasses

from facelab.errors import ParamsError
from facelab.params.schema import FER2013_LABELS, GENERATED_CLASSES, DataParams, Fer2013

MAX_GENERATED_IMG_SIZE = 512  # the face generator draws at twice the size; larger would take minutes per image
# What each source needs beyond the keys every task has: the key, and what to put there.
NEEDS = {"folder": {"path": "a path to <path>/<class_name>/ folders"},
         "fer2013": {"path": "a path to fer2013.csv or to the release folder holding train/ and test/",
                     "fer2013": f"a class (or null) for each FER2013 label {list(FER2013_LABELS)}"},
         "lfw": {"lfw": "lfw: {target: <Person_Name>, n_other: <count>}"},
         "generated": {"generated": "n_images, n_identities, difficulty"}}


def check_data(task: str, data: DataParams) -> None:
    """A task's data block against its task and source: what each key's own type cannot say."""
    where = f"data.{task}"
    if data.faces != "none" and data.source == "generated":
        raise ParamsError(f"{where}.faces: '{data.faces}' finds faces in photos; the generated faces are already face "
                          f"crops: use faces: none, or a folder/lfw/fer2013 source")
    for key, needed in NEEDS[data.source].items():
        if not getattr(data, key):
            raise ParamsError(f"{where}.{key}: {'missing; ' * (key != 'path')}source '{data.source}' needs {needed}")
    if data.source == "generated" and tuple(data.classes) != GENERATED_CLASSES[task]:
        raise ParamsError(f"{where}.classes: the generated {task} data has classes "
                          f"{list(GENERATED_CLASSES[task])}, got {list(data.classes)}")
    if data.source == "generated" and data.img_size > MAX_GENERATED_IMG_SIZE:
        raise ParamsError(f"{where}.img_size: {data.img_size} is over {MAX_GENERATED_IMG_SIZE}, the largest the "
                          f"generated faces are drawn at; use {MAX_GENERATED_IMG_SIZE} or less")
    if data.source == "generated" and task == "face" and data.generated and data.generated.target_fraction is None:
        raise ParamsError(f"{where}.generated.target_fraction: missing; the face task needs the target's share, "
                          f"inside (0, 1)")
    if data.source == "lfw" and len(data.classes) != 2:
        raise ParamsError(f"{where}.classes: source 'lfw' is a binary task [others, target person], "
                          f"got {list(data.classes)}")
    if data.source == "fer2013" and data.fer2013:
        check_fer2013(data.fer2013, data.classes, where)


def check_fer2013(fer2013: Fer2013, classes: tuple[str, ...], where: str) -> None:
    """Each FER2013 label maps to one of the task's classes (or to none), and each class gets a label."""
    mapping = dataclasses.asdict(fer2013)
    for label, name in mapping.items():
        if name is not None and name not in classes:
            raise ParamsError(f"{where}.fer2013.{label}: '{name}' is not one of {list(classes)}")
    unfed = [name for name in classes if name not in mapping.values()]
    if unfed:
        raise ParamsError(f"{where}.fer2013: no FER2013 label maps to class(es) {unfed}; "
                          f"set one of {list(FER2013_LABELS)} to each")
