"""Params: params.yaml's schema (schema.py), the checks that span keys (checks.py) and the loader (loader.py)."""
from facelab.params.checks import closest_key  # noqa: F401
from facelab.params.loader import augmentation, load_params, parse_params, parse_recipe  # noqa: F401
from facelab.params.schema import (ARCH_MODULES, FER2013_LABELS, GENERATED_CLASSES, RECIPES, SELECT_BY,  # noqa: F401
                                   TASKS, Augment, DataParams, Fer2013, Generated, Lfw, Params, Recipe, Split,
                                   TrainParams, WandbParams, plain_folder_name)
