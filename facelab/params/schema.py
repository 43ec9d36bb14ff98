"""Params schema: the typed, frozen shape of params.yaml. Every key is required: params.yaml holds every default."""
from __future__ import annotations

import dataclasses
from typing import Annotated, Literal, Optional, get_args

from pydantic import AfterValidator, ConfigDict, Field, Strict, StrictBool, StrictInt, StrictStr
from pydantic.dataclasses import dataclass

# FER2013's seven labels: the CSV's emotion column holds their index, the image-folder release their names.
FER2013_LABELS = ("angry", "disgust", "fear", "happy", "sad", "surprise", "neutral")
# The generated source draws these exact classes; label i of the generator is classes[i].
GENERATED_CLASSES = {"face": ("other", "target"), "emotion": ("angry", "happy", "sad")}
MAX_SEED = 2**32 - 1  # numpy's and scikit-learn's seeds are unsigned 32-bit
# Top-level modules of each torchvision architecture: models.<recipe>.frozen names these or their children.
ARCH_MODULES = {"vgg16": ("features", "avgpool", "classifier"),
                "resnet18": ("conv1", "bn1", "relu", "maxpool", "layer1", "layer2", "layer3", "layer4", "avgpool", "fc")}
SelectBy = Literal["val_loss", "val_macro_f1"]
_FORBID = ConfigDict(extra="forbid")
model = dataclass(frozen=True, config=_FORBID)


def _inside(low: float, high: float, brackets: str = "()", note: str = ""):
    """A range check whose message says the range and what its ends mean."""
    def check(value):
        above = value >= low if brackets[0] == "[" else value > low
        below = value <= high if brackets[1] == "]" else value < high
        if not (above and below):
            raise ValueError(f"{value} must be inside {brackets[0]}{low}, {high}{brackets[1]}{note}")
        return value
    return AfterValidator(check)


def _positive(value):
    if not value > 0:
        raise ValueError(f"{value} must be > 0")
    return value


def _img_size(value):
    # below 32 px resnet18/vgg16 downsample the image to nothing; above 1024 a decoded split no longer fits in memory
    if value < 32:
        raise ValueError(f"{value} is under 32; use 32 or more")
    if value > 1024:
        raise ValueError(f"{value} is over 1024; use 1024 or less")
    return value


Num = Annotated[float, Strict()]
Positive = Annotated[float, Strict(), AfterValidator(_positive)]
Count = Annotated[int, Strict(), AfterValidator(_positive)]
Unit = Annotated[float, Strict(), _inside(0, 1)]
Off = " (0: off)"


@model
class Split:
    train: Unit
    val: Unit
    test: Unit


@model
class Generated:
    n_images: Count
    n_identities: Annotated[int, Strict(), Field(ge=2)]
    difficulty: Annotated[float, Strict(), Field(ge=0)]
    target_fraction: Optional[Unit] = None  # face task only: the target person's share


@model
class Lfw:
    """Labeled Faces in the Wild as a binary task: one person (classes[1]) against a sample of everybody else."""
    target: StrictStr  # a person's folder name in LFW, e.g. George_W_Bush
    n_other: Count     # images of other people, drawn from the seed
    download: StrictBool  # false: never touch the network, fail if the cache is missing


@model
class Fer2013:
    """Which class each FER2013 label becomes; a label left out or null is dropped."""
    angry: Optional[StrictStr] = None
    disgust: Optional[StrictStr] = None
    fear: Optional[StrictStr] = None
    happy: Optional[StrictStr] = None
    sad: Optional[StrictStr] = None
    surprise: Optional[StrictStr] = None
    neutral: Optional[StrictStr] = None


@model
class DataParams:
    source: Literal["generated", "folder", "lfw", "fer2013"]
    path: Optional[StrictStr]
    classes: tuple[StrictStr, ...]
    img_size: Annotated[int, Strict(), AfterValidator(_img_size)]
    split: Split
    max_bad_fraction: Annotated[float, Strict(), _inside(0, 1, "[)", " (0: any unreadable file stops prepare)")]
    faces: Literal["none", "detect"]
    min_side: Count  # pixels: a smaller image is skipped as too small, never stretched
    near_duplicates: Literal["group", "drop", "keep"]  # perceptual-hash copies: one split, one copy, or ignored
    # Blocks of one source each: absent (None) where the task uses another source.
    generated: Optional[Generated] = None
    lfw: Optional[Lfw] = None
    fer2013: Optional[Fer2013] = None


@model
class Augment:
    """Random changes to each training image, drawn per image and epoch from the run's seed."""
    hflip: StrictBool                     # mirror left-right with probability 1/2
    crop_scale: tuple[Num, ...]           # random resized crop: area fraction kept, [low, high]
    rotation: Annotated[float, Strict(), _inside(0, 180, "[]", " degrees (0: off)")]
    brightness: Annotated[float, Strict(), _inside(0, 1, "[)", Off)]  # pixel gain in [1 - b, 1 + b]
    contrast: Annotated[float, Strict(), _inside(0, 1, "[)", Off)]    # contrast factor in [1 - c, 1 + c]
    erasing: Annotated[float, Strict(), _inside(0, 1, "[]", " (a probability; 0: off)")]

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
        return [name for name in ("crop_scale", "rotation", "brightness", "contrast", "erasing")
                if getattr(self, name) != getattr(off, name)]


@model
class Recipe:
    arch: Literal["vgg16", "resnet18"]
    weights: Literal["imagenet", "none"]
    frozen: tuple[StrictStr, ...]
    head_hidden: Annotated[int, Strict(), Field(ge=0)]  # 0: replace only the last layer; >0: a two-layer head
    dropout: Annotated[float, Strict(), _inside(0, 1, "[)")]
    optimizer: Literal["adam", "adamw", "sgd"]
    lr: Positive
    momentum: Annotated[float, Strict(), Field(ge=0)]
    weight_decay: Annotated[float, Strict(), Field(ge=0)]
    epochs: Count
    batch_size: Count
    schedule: Literal["none", "cosine", "step"]  # stepped once per epoch
    step_size: Count
    gamma: Positive
    augment: Optional[Augment] = None  # absent: train.augment; a mapping overrides some of its keys


@model
class TrainParams:
    augment: Augment
    class_weights: Literal["none", "balanced"]
    select_by: SelectBy  # which epoch's weights are kept (ties: lower val loss)
    label_smoothing: Annotated[float, Strict(), _inside(0, 1, "[)", Off)]
    tta_flip: StrictBool
    calibrate: Literal["none", "temperature"]  # temperature: one T fitted on val after training, applied to probabilities
    eval_batch_size: Count
    threads: Count
    patience: Annotated[int, Strict(), Field(ge=0)]  # epochs without a better select_by score; 0: off
    vanishing_grad_norm: Positive
    exploding_grad_norm: Positive
    devices: Count
    nodes: Count
    rdzv_endpoint: StrictStr
    device: Literal["auto", "cpu", "cuda"]
    precision: Literal["auto", "fp32", "bf16"]
    compile: StrictBool


@model
class WandbParams:
    mode: Literal["offline", "online", "disabled"]
    project: StrictStr
    entity: Optional[StrictStr]
    dir: StrictStr
    watch_freq: Count


@model
class Tasks:
    face: DataParams
    emotion: DataParams


@model
class Recipes:
    vgg16_finetune: Recipe
    resnet18_scratch: Recipe
    resnet18_pretrained: Recipe


@model
class Schema:
    seed: Annotated[int, Strict(), _inside(0, MAX_SEED, "[]", " (numpy and scikit-learn seeds)")]
    data: Tasks
    models: Recipes
    train: TrainParams
    wandb: WandbParams


TASKS = tuple(f.name for f in dataclasses.fields(Tasks))
RECIPES = tuple(f.name for f in dataclasses.fields(Recipes))
SELECT_BY = get_args(SelectBy)
