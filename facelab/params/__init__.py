"""Params: params.yaml's schema (schema.py), the checks that span keys (checks.py) and the loader (loader.py)."""
from facelab.params.checks import closest_key, plain_folder_name
from facelab.params.loader import Params, augmentation, load_params, parse_params, parse_recipe
from facelab.params.schema import (ARCH_MODULES, FER2013_LABELS, GENERATED_CLASSES, RECIPES, SELECT_BY, TASKS,
                                   Augment, DataParams, Fer2013, Generated, Lfw, Recipe, Split, TrainParams,
                                   WandbParams)

__all__ = ["ARCH_MODULES", "FER2013_LABELS", "GENERATED_CLASSES", "RECIPES", "SELECT_BY", "TASKS", "Augment",
           "DataParams", "Fer2013", "Generated", "Lfw", "Params", "Recipe", "Split", "TrainParams", "WandbParams",
           "augmentation", "closest_key", "load_params", "parse_params", "parse_recipe", "plain_folder_name"]
