"""Params schema: the typed, frozen shape of params.yaml. Every key is required: params.yaml holds every default
and says what each key means."""
from __future__ import annotations

import dataclasses
from typing import Annotated, Literal, Optional, get_args

from pydantic import AfterValidator, ConfigDict, Field, Strict, StrictBool as Bool, StrictStr as Str
from pydantic.dataclasses import dataclass

# FER2013's seven labels: the CSV's emotion column holds their index, the image-folder release their names.
FER2013_LABELS = ("angry", "disgust", "fear", "happy", "sad", "surprise", "neutral")
# The generated source draws these exact classes; label i of the generator is classes[i].
GENERATED_CLASSES = {"face": ("other", "target"), "emotion": ("angry", "happy", "sad")}
# Top-level modules of each torchvision architecture: models.<recipe>.frozen names these or their children.
ARCH_MODULES = {"vgg16": ("features", "avgpool", "classifier"),
                "resnet18": ("conv1", "bn1", "relu", "maxpool", "layer1", "layer2", "layer3", "layer4", "avgpool", "fc")}
SelectBy = Literal["val_loss", "val_macro_f1"]
model = dataclass(frozen=True, config=ConfigDict(extra="forbid"))


def _rule(test, message: str):
    """A value check whose message (formatted with the value) says the allowed range and what its ends mean."""
    def check(value):
        if not test(value):
            raise ValueError(message.format(value))
        return value
    return AfterValidator(check)


def Num(*rules):
    return Annotated[float, Strict(), *rules]


def Int(*rules):
    return Annotated[int, Strict(), *rules]


Count = Int(_rule(lambda v: v > 0, "{} must be > 0"))
Positive = Num(_rule(lambda v: v > 0, "{} must be > 0"))
Unit = Num(_rule(lambda v: 0 < v < 1, "{} must be inside (0, 1)"))
Share = Num(_rule(lambda v: 0 <= v < 1, "{} must be inside [0, 1) (0: off)"))
NonNegative = Num(Field(ge=0))


def record(name: str, **fields):
    """A frozen, validated dataclass with these fields, in order; absent(T) fields default to None."""
    return model(dataclasses.make_dataclass(name, [(key, *kind) if isinstance(kind, tuple) else (key, kind)
                                                   for key, kind in fields.items()], frozen=True))


def absent(kind) -> tuple:
    """A block that only some sources have: None where the task does not use it."""
    return Optional[kind], None


Split = record("Split", train=Unit, val=Unit, test=Unit)
Generated = record("Generated", n_images=Count, n_identities=Int(Field(ge=2)), difficulty=NonNegative,
                   target_fraction=absent(Unit))  # the face task only
Lfw = record("Lfw", target=Str, n_other=Count, download=Bool)
# The class each FER2013 label becomes; a label left out (or null) is dropped.
Fer2013 = record("Fer2013", **{label: absent(Str) for label in FER2013_LABELS})


@model
class DataParams:
    source: Literal["generated", "folder", "lfw", "fer2013"]
    path: Optional[Str]
    classes: tuple[Str, ...]
    # below 32 px resnet18/vgg16 downsample the image to nothing; above 1024 a decoded split no longer fits in memory
    img_size: Int(_rule(lambda v: v >= 32, "{} is under 32; use 32 or more"),
                  _rule(lambda v: v <= 1024, "{} is over 1024; use 1024 or less"))
    split: Split
    max_bad_fraction: Num(_rule(lambda v: 0 <= v < 1, "{} must be inside [0, 1) (0: any unreadable file stops "
                                                      "prepare)"))
    faces: Literal["none", "detect"]
    min_side: Count
    near_duplicates: Literal["group", "drop", "keep"]
    generated: Optional[Generated] = None  # a source's own block: absent where the task uses another source
    lfw: Optional[Lfw] = None
    fer2013: Optional[Fer2013] = None


@model
class Augment:
    hflip: Bool
    crop_scale: tuple[Num(), ...]
    rotation: Num(_rule(lambda v: 0 <= v <= 180, "{} must be inside [0, 180] degrees (0: off)"))
    brightness: Share
    contrast: Share
    erasing: Num(_rule(lambda v: 0 <= v <= 1, "{} must be inside [0, 1] (a probability; 0: off)"))

    @classmethod
    def off(cls, **changes) -> "Augment":
        """No augmentation, except the `changes` given: the one definition of "off"."""
        return cls(**{"hflip": False, "crop_scale": (1.0, 1.0), "rotation": 0.0, "brightness": 0.0,
                      "contrast": 0.0, "erasing": 0.0, **changes})

    def geometric(self) -> bool:
        return tuple(self.crop_scale) != (1.0, 1.0) or self.rotation > 0

    def beyond_flip(self) -> list[str]:
        """The settings that change pixels other than by a mirror (all need the whole network per step)."""
        off = Augment.off()
        return [f.name for f in dataclasses.fields(self) if f.name != "hflip"
                and getattr(self, f.name) != getattr(off, f.name)]


@model
class Recipe:
    arch: Literal["vgg16", "resnet18"]
    weights: Literal["imagenet", "none"]
    frozen: tuple[Str, ...]
    head_hidden: Int(Field(ge=0))
    dropout: Num(_rule(lambda v: 0 <= v < 1, "{} must be inside [0, 1)"))
    optimizer: Literal["adam", "adamw", "sgd"]
    lr: Positive
    momentum: NonNegative
    weight_decay: NonNegative
    epochs: Count
    batch_size: Count
    schedule: Literal["none", "cosine", "step"]
    step_size: Count
    gamma: Positive
    augment: Optional[Augment] = None  # absent: train.augment; a mapping overrides some of its keys


@model
class TrainParams:
    augment: Augment
    class_weights: Literal["none", "balanced"]
    select_by: SelectBy
    label_smoothing: Share
    tta_flip: Bool
    eval_batch_size: Count
    threads: Count
    patience: Int(Field(ge=0))
    vanishing_grad_norm: Positive
    exploding_grad_norm: Positive
    devices: Count
    nodes: Count
    rdzv_endpoint: Str
    device: Literal["auto", "cpu", "cuda"]
    precision: Literal["auto", "fp32", "bf16"]
    compile: Bool
    calibrate: Literal["none", "temperature"]


WandbParams = record("WandbParams", mode=Literal["offline", "online", "disabled"], project=Str, entity=Optional[Str],
                     dir=Str, watch_freq=Count)


TASKS = ("face", "emotion")
RECIPES = ("vgg16_finetune", "resnet18_scratch", "resnet18_pretrained")
Tasks = record("Tasks", **{task: DataParams for task in TASKS})
Recipes = record("Recipes", **{recipe: Recipe for recipe in RECIPES})


Schema = record("Schema", seed=Int(_rule(lambda v: 0 <= v <= 2**32 - 1,
                                        "{} must be inside [0, 4294967295] (numpy and scikit-learn seeds)")),
                data=Tasks, models=Recipes, train=TrainParams, wandb=WandbParams)


SELECT_BY = get_args(SelectBy)
