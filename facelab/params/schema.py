"""Params schema: params.yaml's typed, frozen shape. Every key is required: params.yaml holds every default.

Each block of params.yaml is a frozen pydantic dataclass below; a key's rule is a named validator beside it.
A validator's message may write {at} for its block's key path (data.face): the loader fills it in.
"""
from __future__ import annotations

import dataclasses
import unicodedata
from collections.abc import Iterator, Mapping
from typing import Annotated, Any, ClassVar, Literal, TypeVar

from pydantic import AfterValidator, ConfigDict, Strict, model_validator
from pydantic import StrictBool as Bool
from pydantic import StrictStr as Str
from pydantic.dataclasses import dataclass

from facelab.errors import closest_key
from facelab.files import plain_folder_name

# The generated source draws these exact classes; label i of the generator is classes[i].
GENERATED_CLASSES = {"face": ("other", "target"), "emotion": ("angry", "happy", "sad")}
# Top-level modules of each torchvision architecture: models.<recipe>.frozen names these or their children.
ARCH_MODULES = {"vgg16": ("features", "avgpool", "classifier"),
                "resnet18": ("conv1", "bn1", "relu", "maxpool", "layer1", "layer2", "layer3", "layer4", "avgpool",
                             "fc")}
FORBID = ConfigDict(extra="forbid")  # a misspelt key is an error, never a silently ignored one
N = TypeVar("N", int, float)
V = TypeVar("V")


class KeyProblem(ValueError):
    """A rule between keys of one block is broken: raised by the block's validator, reported at `key`."""

    def __init__(self, key: str, problem: str):
        super().__init__(problem)
        self.key = key


# Named checks of one value: each returns the value, or raises the error the loader shows after the key's path.

def positive(value: N) -> N:
    if value <= 0:
        raise ValueError(f"{value} must be > 0")
    return value


def not_negative(value: N) -> N:
    if value < 0:
        raise ValueError(f"{value} must be >= 0")
    return value


def inside_0_1(value: float) -> float:
    if not 0 < value < 1:
        raise ValueError(f"{value} must be inside (0, 1)")
    return value


def share_or_off(value: float) -> float:
    if not 0 <= value < 1:
        raise ValueError(f"{value} must be inside [0, 1) (0: off)")
    return value


def at_least_2(value: int) -> int:
    if value < 2:
        raise ValueError(f"{value} must be >= 2")
    return value


def numpy_seed(value: int) -> int:
    if not 0 <= value <= 2**32 - 1:
        raise ValueError(f"{value} must be inside [0, 4294967295] (numpy and scikit-learn seeds)")
    return value


def distinct_seeds(values: tuple[int, ...]) -> tuple[int, ...]:
    """seeds: at least one, none twice (a repeated seed would be one run counted twice)."""
    if not values:
        raise ValueError("[] holds no seed; give at least one, e.g. [42] (one training run per seed)")
    repeated = sorted({seed for seed in values if values.count(seed) > 1})
    if repeated:
        raise ValueError(f"{list(values)} repeats {repeated}; each seed is one training run, give each once")
    return values


def lfw_folder_name(value: str) -> str:
    if not value or "/" in value:
        raise ValueError(f"'{value}' is not an LFW folder name such as George_W_Bush")
    return value


def class_folder_names(names: tuple[str, ...]) -> tuple[str, ...]:
    """At least 2 distinct class names (after unicode normalisation), each a plain folder name."""
    bad = [name for name in names if not plain_folder_name(name)]
    if bad:
        raise ValueError(f"'{bad[0]}' is not a plain folder name; a class name is the name of a folder under "
                         f"{{at}}.path, without '/', '\\', '.' or '..'")
    if len({unicodedata.normalize("NFC", name) for name in names}) != len(names) or len(names) < 2:
        raise ValueError(f"need at least 2 distinct class names, got {list(names)}")
    return names


def image_side(value: int) -> int:
    """Below 32 px resnet18/vgg16 downsample the image to nothing; above 1024 a split no longer fits in memory."""
    if value < 32:
        raise ValueError(f"{value} is under 32; use 32 or more")
    if value > 1024:
        raise ValueError(f"{value} is over 1024; use 1024 or less")
    return value


def bad_fraction(value: float) -> float:
    if not 0 <= value < 1:
        raise ValueError(f"{value} must be inside [0, 1) (0: any unreadable file stops prepare)")
    return value


def crop_area(value: tuple[float, ...]) -> tuple[float, ...]:
    if not (len(value) == 2 and 0 < value[0] <= value[1] <= 1):
        raise ValueError(f"{list(value)} must be [low, high] with 0 < low <= high <= 1 (the share of the image's "
                         f"area a crop keeps; [1.0, 1.0]: no crop)")
    return value


def degrees(value: float) -> float:
    if not 0 <= value <= 180:
        raise ValueError(f"{value} must be inside [0, 180] degrees (0: off)")
    return value


def probability_or_off(value: float) -> float:
    if not 0 <= value <= 1:
        raise ValueError(f"{value} must be inside [0, 1] (a probability; 0: off)")
    return value


def ema_decay(value: float) -> float:
    if not 0 <= value < 1:
        raise ValueError(f"{value} must be inside [0, 1) (the share of the average kept each step, e.g. 0.999; 0: off)")
    return value


def mix_alpha(value: float) -> float:
    if not 0 <= value <= 10:
        raise ValueError(f"{value} must be inside [0, 10] (the Beta(alpha, alpha) of the mixing weight, e.g. 0.2 "
                         f"or 1.0; 0: off)")
    return value


def dropout_rate(value: float) -> float:
    if not 0 <= value < 1:
        raise ValueError(f"{value} must be inside [0, 1)")
    return value


# Strict numbers: "1" is not 1, and true is not 1.
Number = Annotated[float, Strict()]
Count = Annotated[int, Strict(), AfterValidator(positive)]
Whole = Annotated[int, Strict(), AfterValidator(not_negative)]
Positive = Annotated[float, Strict(), AfterValidator(positive)]
NonNegative = Annotated[float, Strict(), AfterValidator(not_negative)]
Unit = Annotated[float, Strict(), AfterValidator(inside_0_1)]
Share = Annotated[float, Strict(), AfterValidator(share_or_off)]
Seed = Annotated[int, Strict(), AfterValidator(numpy_seed)]


class ByName(Mapping[str, V]):
    """A record of blocks that is read as a mapping too: params.data[task], params.models[recipe], .items()."""

    __dataclass_fields__: ClassVar[dict[str, dataclasses.Field[Any]]]  # set by @dataclass on each subclass

    def __getitem__(self, name: str) -> V:
        if name not in self.__dataclass_fields__:
            raise KeyError(name)
        return getattr(self, name)

    def __iter__(self) -> Iterator[str]:
        return iter(self.__dataclass_fields__)

    def __len__(self) -> int:
        return len(self.__dataclass_fields__)


@dataclass(frozen=True, config=FORBID)
class Split:
    """data.<task>.split: each split's share of the images."""
    train: Unit
    val: Unit
    test: Unit

    @model_validator(mode="after")
    def shares_add_up_to_1(self) -> Split:
        total = self.train + self.val + self.test
        if abs(total - 1) > 1e-6:
            raise ValueError(f"train + val + test = {total:g}; they must add up to 1")
        return self


@dataclass(frozen=True, config=FORBID)
class Generated:
    """data.<task>.generated: the drawn faces' number, identities and difficulty."""
    n_images: Count
    n_identities: Annotated[int, Strict(), AfterValidator(at_least_2)]
    difficulty: NonNegative
    target_fraction: Unit | None = None  # the face task only


@dataclass(frozen=True, config=FORBID)
class Lfw:
    """data.<task>.lfw: the person whose photos are the target class, and how many others to draw."""
    target: Annotated[Str, AfterValidator(lfw_folder_name)]
    n_other: Count
    download: Bool


@dataclass(frozen=True, config=FORBID)
class Fer2013:
    """data.<task>.fer2013: the class each FER2013 label becomes; a label left out (or null) is dropped.

    The fields are FER2013's seven labels in order: the CSV's emotion column holds their index, the image-folder
    release their names."""
    angry: Str | None = None
    disgust: Str | None = None
    fear: Str | None = None
    happy: Str | None = None
    sad: Str | None = None
    surprise: Str | None = None
    neutral: Str | None = None


@dataclass(frozen=True, config=FORBID)
class DataParams:
    """data.<task>: where a task's images come from, and how prepare checks, sizes and splits them."""
    source: Literal["generated", "folder", "lfw", "fer2013"]
    path: Str | None
    classes: Annotated[tuple[Str, ...], AfterValidator(class_folder_names)]
    img_size: Annotated[int, Strict(), AfterValidator(image_side)]
    split: Split
    max_bad_fraction: Annotated[float, Strict(), AfterValidator(bad_fraction)]
    faces: Literal["none", "detect", "align"]
    faces_fallback: Literal["center", "skip"]  # a photo in which faces: detect or align finds no face
    min_side: Count
    near_duplicates: Literal["group", "drop", "keep"]
    cut_copies: Literal["search", "skip"]  # files of several sizes: copies cut anywhere out of a photo | hashes alone
    label_issues: Literal["report", "drop"]  # audit@<task>'s flagged images: listed only | also left out of train, val
    # A source's own block, absent where the task uses another source.
    generated: Generated | None = None
    lfw: Lfw | None = None
    fer2013: Fer2013 | None = None


@dataclass(frozen=True, config=FORBID)
class Augment:
    """train.augment (or models.<recipe>.augment): the random changes to each training image."""
    hflip: Bool
    crop_scale: Annotated[tuple[Number, ...], AfterValidator(crop_area)]
    rotation: Annotated[float, Strict(), AfterValidator(degrees)]
    brightness: Share
    contrast: Share
    erasing: Annotated[float, Strict(), AfterValidator(probability_or_off)]


# The one definition of "no augmentation": dataclasses.replace(AUGMENT_OFF, hflip=True) keeps only the flip.
AUGMENT_OFF = Augment(hflip=False, crop_scale=(1.0, 1.0), rotation=0.0, brightness=0.0, contrast=0.0, erasing=0.0)


@dataclass(frozen=True, config=FORBID)
class Recipe:
    """models.<recipe>: a model's architecture, starting weights, head and optimisation."""
    arch: Literal["vgg16", "resnet18"]
    weights: Literal["imagenet", "none"]
    frozen: tuple[Str, ...]  # modules of arch (or their children) that do not train
    head_hidden: Whole
    dropout: Annotated[float, Strict(), AfterValidator(dropout_rate)]
    optimizer: Literal["adam", "adamw", "sgd"]
    lr: Positive
    momentum: NonNegative
    weight_decay: NonNegative
    epochs: Count
    batch_size: Count
    schedule: Literal["none", "cosine", "step"]
    step_size: Count
    gamma: Positive
    # Absent: train.augment; in params.yaml a mapping overrides some of its keys (the loader completes it).
    augment: Augment | None = None
    # resnet18's first layers: imagenet (7x7 stride-2 convolution, then max-pool: a 64 px image is 16 px at layer1)
    # or small (3x3 stride-1 convolution, no max-pool: 64 px at layer1, as ResNets for 32 px CIFAR images are built).
    # Absent (model files written before the key existed): imagenet.
    stem: Literal["imagenet", "small"] = "imagenet"

    @model_validator(mode="after")
    def frozen_modules_of_arch(self) -> Recipe:
        allowed = ARCH_MODULES[self.arch]
        wrong = [name for name in self.frozen if name.split(".")[0] not in allowed]
        if wrong:
            close = closest_key(wrong[0].split(".")[0], allowed)
            raise KeyProblem("frozen", f"'{wrong[0]}' is not a module of {self.arch}; "
                                       f"{f'did you mean {close!r}? ' if close else ''}"
                                       f"its top-level modules are {list(allowed)}")
        if self.stem == "small" and self.arch != "resnet18":
            raise KeyProblem("stem", f"'small' is a stem for resnet18, not {self.arch}; use stem: imagenet")
        return self


@dataclass(frozen=True, config=FORBID)
class TrainParams:
    """train: the settings every recipe trains and evaluates with."""
    augment: Augment
    class_weights: Literal["none", "balanced"]
    select_by: Literal["val_loss", "val_macro_f1"]
    label_smoothing: Share
    tta_flip: Bool
    eval_batch_size: Count
    threads: Count
    patience: Whole
    checkpoint_seconds: Whole
    vanishing_grad_norm: Positive
    exploding_grad_norm: Positive
    devices: Count
    nodes: Count
    rdzv_endpoint: Str
    device: Literal["auto", "cpu", "cuda"]
    precision: Literal["auto", "fp32", "bf16"]
    compile: Bool
    calibrate: Literal["none", "temperature"]
    # Absent (model files written before these keys existed): off.
    ema: Annotated[float, Strict(), AfterValidator(ema_decay)] = 0.0  # decay of an average of the weights; 0: off
    mixup: Annotated[float, Strict(), AfterValidator(mix_alpha)] = 0.0  # MixUp's alpha; 0: off
    cutmix: Annotated[float, Strict(), AfterValidator(mix_alpha)] = 0.0  # CutMix's alpha; 0: off

    @model_validator(mode="after")
    def exploding_above_vanishing(self) -> TrainParams:
        if self.exploding_grad_norm <= self.vanishing_grad_norm:
            raise KeyProblem("exploding_grad_norm", f"{self.exploding_grad_norm} must be above vanishing_grad_norm "
                                                    f"({self.vanishing_grad_norm})")
        return self


@dataclass(frozen=True, config=FORBID)
class WandbParams:
    """wandb: where and whether runs are logged to Weights & Biases."""
    mode: Literal["offline", "online", "disabled"]
    project: Str
    entity: Str | None
    dir: Str


@dataclass(frozen=True, config=FORBID)
class Tasks(ByName[DataParams]):
    """data: one block per task, every task required."""
    face: DataParams
    emotion: DataParams


@dataclass(frozen=True, config=FORBID)
class Recipes(ByName[Recipe]):
    """models: one block per recipe, every recipe required."""
    vgg16_finetune: Recipe
    resnet18_scratch: Recipe
    resnet18_pretrained: Recipe


@dataclass(frozen=True, config=FORBID)
class Params:
    """params.yaml. seeds: one training run per seed (its split, initialisation, augmentation draws, batch order);
    data_seed: draws the data itself (the generated faces, LFW's sample), so it is decoded once per task."""
    seeds: Annotated[tuple[Seed, ...], AfterValidator(distinct_seeds)]
    data_seed: Seed
    data: Tasks
    models: Recipes
    train: TrainParams
    wandb: WandbParams


# The names have one home, the class statements above.
TASKS = tuple(field.name for field in dataclasses.fields(Tasks))
RECIPES = tuple(field.name for field in dataclasses.fields(Recipes))
FER2013_LABELS = tuple(field.name for field in dataclasses.fields(Fer2013))
