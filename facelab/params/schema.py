"""Params schema: the typed, frozen shape of params.yaml. Every key is required: params.yaml holds every default
and says what each key means."""
from __future__ import annotations

import dataclasses
import unicodedata
from typing import Annotated, Literal, Optional, get_args

from pydantic import AfterValidator, ConfigDict, Strict, StrictBool as Bool, StrictStr as Str, with_config
from pydantic.dataclasses import dataclass
from typing_extensions import TypedDict  # pydantic needs this one below Python 3.12

# FER2013's seven labels: the CSV's emotion column holds their index, the image-folder release their names.
FER2013_LABELS = ("angry", "disgust", "fear", "happy", "sad", "surprise", "neutral")
# The generated source draws these exact classes; label i of the generator is classes[i].
GENERATED_CLASSES = {"face": ("other", "target"), "emotion": ("angry", "happy", "sad")}
# Top-level modules of each torchvision architecture: models.<recipe>.frozen names these or their children.
ARCH_MODULES = {"vgg16": ("features", "avgpool", "classifier"),
                "resnet18": ("conv1", "bn1", "relu", "maxpool", "layer1", "layer2", "layer3", "layer4", "avgpool", "fc")}
TASKS = ("face", "emotion")
RECIPES = ("vgg16_finetune", "resnet18_scratch", "resnet18_pretrained")
SelectBy = Literal["val_loss", "val_macro_f1"]
SELECT_BY = get_args(SelectBy)
FORBID = ConfigDict(extra="forbid")
model = dataclass(frozen=True, config=FORBID)


def Checked(kind, problem):
    """A `kind` for which problem(value) is None; else what it returns says what is wrong and what is allowed
    ("{at}" in it becomes the key's block, such as data.face)."""
    def check(value):
        wrong = problem(value)
        if wrong:
            raise ValueError(wrong)
        return value
    return Annotated[kind, AfterValidator(check)]


def Num(test=lambda v: True, message="", kind: type = float):
    """A strict number (no "1" for 1) that passes `test`; else `message`, formatted with the value, is the error."""
    return Checked(Annotated[kind, Strict()], lambda v: None if test(v) else message.format(v))


def plain_folder_name(name: str) -> bool:
    """A name that is one folder under its parent: not empty, not '.' or '..', no separator."""
    return bool(name) and name not in (".", "..") and "/" not in name and "\\" not in name


def class_names(names: tuple) -> str | None:
    """What is wrong with a task's class names, or None."""
    bad = [name for name in names if not plain_folder_name(name)]
    if bad:
        return (f"'{bad[0]}' is not a plain folder name; a class name is the name of a folder under {{at}}.path, "
                f"without '/', '\\', '.' or '..'")
    if len({unicodedata.normalize("NFC", c) for c in names}) != len(names) or len(names) < 2:
        return f"need at least 2 distinct class names, got {list(names)}"


Count = Num(lambda v: v > 0, "{} must be > 0", int)
Whole = Num(lambda v: v >= 0, "{} must be >= 0", int)
Positive = Num(lambda v: v > 0, "{} must be > 0")
NonNegative = Num(lambda v: v >= 0, "{} must be >= 0")
Unit = Num(lambda v: 0 < v < 1, "{} must be inside (0, 1)")
Share = Num(lambda v: 0 <= v < 1, "{} must be inside [0, 1) (0: off)")


def record(name: str, **fields):
    """A frozen, validated dataclass with these fields, in order; a (type, None) field may be left out."""
    return model(dataclasses.make_dataclass(name, [(key, *kind) if isinstance(kind, tuple) else (key, kind)
                                                   for key, kind in fields.items()], frozen=True))


Split = record("Split", train=Unit, val=Unit, test=Unit)
SplitSum = Checked(Split, lambda s: abs(s.train + s.val + s.test - 1) > 1e-6
                   and f"train + val + test = {s.train + s.val + s.test:g}; they must add up to 1")
Generated = record("Generated", n_images=Count, n_identities=Num(lambda v: v >= 2, "{} must be >= 2", int),
                   difficulty=NonNegative, target_fraction=(Optional[Unit], None))  # the face task only
Lfw = record("Lfw", target=Checked(Str, lambda v: (not v or "/" in v)
                                   and f"'{v}' is not an LFW folder name such as George_W_Bush"), n_other=Count,
             download=Bool)
# The class each FER2013 label becomes; a label left out (or null) is dropped.
Fer2013 = record("Fer2013", **{label: (Optional[Str], None) for label in FER2013_LABELS})


# img_size: below 32 px resnet18/vgg16 downsample the image to nothing; above 1024 a split no longer fits in memory.
# generated, lfw, fer2013: a source's own block, absent where the task uses another source.
DataParams = record(
    "DataParams", source=Literal["generated", "folder", "lfw", "fer2013"], path=Optional[Str],
    classes=Checked(tuple[Str, ...], class_names),
    img_size=Checked(Annotated[int, Strict()], lambda v: f"{v} is under 32; use 32 or more" if v < 32
                     else f"{v} is over 1024; use 1024 or less" if v > 1024 else None),
    split=SplitSum, max_bad_fraction=Num(lambda v: 0 <= v < 1, "{} must be inside [0, 1) (0: any unreadable "
                                                            "file stops prepare)"),
    faces=Literal["none", "detect"], min_side=Count, near_duplicates=Literal["group", "drop", "keep"],
    generated=(Optional[Generated], None), lfw=(Optional[Lfw], None), fer2013=(Optional[Fer2013], None))


@model
class Augment:
    hflip: Bool
    crop_scale: Checked(tuple[Num(), ...], lambda v: not (len(v) == 2 and 0 < v[0] <= v[1] <= 1) and (
        f"{list(v)} must be [low, high] with 0 < low <= high <= 1 (the share of the image's area a crop keeps; "
        f"[1.0, 1.0]: no crop)"))
    rotation: Num(lambda v: 0 <= v <= 180, "{} must be inside [0, 180] degrees (0: off)")
    brightness: Share
    contrast: Share
    erasing: Num(lambda v: 0 <= v <= 1, "{} must be inside [0, 1] (a probability; 0: off)")

    @classmethod
    def off(cls, **changes) -> "Augment":
        """No augmentation, except the `changes` given: the one definition of "off"."""
        return cls(**{"hflip": False, "crop_scale": (1.0, 1.0), "rotation": 0.0, "brightness": 0.0,
                      "contrast": 0.0, "erasing": 0.0, **changes})


# augment: absent means train.augment; a mapping overrides some of its keys.
Recipe = record(
    "Recipe", arch=Literal["vgg16", "resnet18"], weights=Literal["imagenet", "none"], frozen=tuple[Str, ...],
    head_hidden=Whole, dropout=Num(lambda v: 0 <= v < 1, "{} must be inside [0, 1)"),
    optimizer=Literal["adam", "adamw", "sgd"], lr=Positive, momentum=NonNegative, weight_decay=NonNegative,
    epochs=Count, batch_size=Count, schedule=Literal["none", "cosine", "step"], step_size=Count, gamma=Positive,
    augment=(Optional[Augment], None))
TrainParams = record(
    "TrainParams", augment=Augment, class_weights=Literal["none", "balanced"], select_by=SelectBy,
    label_smoothing=Share, tta_flip=Bool, eval_batch_size=Count, threads=Count, patience=Whole,
    vanishing_grad_norm=Positive, exploding_grad_norm=Positive, devices=Count, nodes=Count, rdzv_endpoint=Str,
    device=Literal["auto", "cpu", "cuda"], precision=Literal["auto", "fp32", "bf16"], compile=Bool,
    calibrate=Literal["none", "temperature"])
WandbParams = record("WandbParams", mode=Literal["offline", "online", "disabled"], project=Str, entity=Optional[Str],
                     dir=Str, watch_freq=Count)
# data and models are mappings ({task: ...}, {recipe: ...}) with every task and recipe required
Tasks = with_config(FORBID)(TypedDict("Tasks", {task: DataParams for task in TASKS}))
Recipes = with_config(FORBID)(TypedDict("Recipes", {recipe: Recipe for recipe in RECIPES}))
Params = record("Params", seed=Num(lambda v: 0 <= v <= 2**32 - 1, "{} must be inside [0, 4294967295] (numpy and "
                                   "scikit-learn seeds)", int), data=Tasks, models=Recipes, train=TrainParams,
                wandb=WandbParams)
