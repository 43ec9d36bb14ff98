"""Params: params.yaml's schema (schema.py), the checks that need a task's context (checks.py) and the loader."""
from facelab.params.loader import augmentation, load_params, parse_params, parse_recipe, raw_params  # noqa: F401
from facelab.params.schema import (  # noqa: F401
                                   AUGMENT_OFF,
                                   FER2013_LABELS,
                                   RECIPES,
                                   TASKS,
                                   Augment,
                                   DataParams,
                                   Fer2013,
                                   Params,
                                   Recipe,
                                   Split,
                                   TrainParams,
                                   WandbParams,
)
