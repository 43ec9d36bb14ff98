"""Params schema: params.yaml's typed, frozen shape. Every key is required: params.yaml holds every default."""
from __future__ import annotations

import dataclasses
import unicodedata
from typing import Annotated, Literal, Optional

from pydantic import AfterValidator, ConfigDict, Strict, with_config
from pydantic import StrictBool as Bool
from pydantic import StrictStr as Str
from pydantic.dataclasses import dataclass
from typing_extensions import TypedDict  # pydantic needs this one below Python 3.12

from facelab.errors import closest_key
from facelab.files import plain_folder_name

# FER2013's seven labels: the CSV's emotion column holds their index, the image-folder release their names.
FER2013_LABELS = ("angry", "disgust", "fear", "happy", "sad", "surprise", "neutral")
# The generated source draws these exact classes; label i of the generator is classes[i].
GENERATED_CLASSES = {"face": ("other", "target"), "emotion": ("angry", "happy", "sad")}
# Top-level modules of each torchvision architecture: models.<recipe>.frozen names these or their children.
ARCH_MODULES = {"vgg16": ("features", "avgpool", "classifier"),
                "resnet18": ("conv1", "bn1", "relu", "maxpool", "layer1", "layer2", "layer3", "layer4", "avgpool", "fc")}
TASKS = ("face", "emotion")
RECIPES = ("vgg16_finetune", "resnet18_scratch", "resnet18_pretrained")
FORBID = ConfigDict(extra="forbid")


def Checked(kind, problem):
    """A `kind` whose problem(value, earlier keys of its block) is falsy, else the error ("{at}": the block's name)."""
    def check(value, info):
        if wrong := problem(value, info.data or {}):
            raise ValueError(wrong)
        return value
    return Annotated[kind, AfterValidator(check)]


def Num(test=lambda v: True, message="", kind: type = float):
    """A strict number (no "1" for 1) that passes `test`; else `message`, formatted with the value, is the error."""
    return Checked(Annotated[kind, Strict()], lambda v, _: not test(v) and message.format(v))


def class_names(names: tuple, _) -> str | None:
    """What is wrong with a task's class names, or None."""
    bad = [name for name in names if not plain_folder_name(name)]
    if bad:
        return (f"'{bad[0]}' is not a plain folder name; a class name is the name of a folder under {{at}}.path, "
                f"without '/', '\\', '.' or '..'")
    if len({unicodedata.normalize("NFC", c) for c in names}) != len(names) or len(names) < 2:
        return f"need at least 2 distinct class names, got {list(names)}"


def frozen_modules(names: tuple, earlier: dict) -> str | None:
    """What is wrong with a recipe's frozen names (each a module of its arch, or a child of one), or None."""
    allowed = ARCH_MODULES.get(earlier.get("arch"), ())
    wrong = [name for name in names if allowed and name.split(".")[0] not in allowed]
    if wrong:
        close = closest_key(wrong[0].split(".")[0], allowed)
        return (f"'{wrong[0]}' is not a module of {earlier['arch']}; {f'did you mean {close!r}? ' if close else ''}"
                f"its top-level modules are {list(allowed)}")


def record(name: str, **fields):
    """A frozen, validated dataclass of these fields ((type, None): may be left out), of this module so it pickles."""
    return dataclass(frozen=True, config=FORBID)(dataclasses.make_dataclass(
        name, [(key, *kind) if isinstance(kind, tuple) else (key, kind) for key, kind in fields.items()], frozen=True,
        namespace={"__module__": __name__}))


Count = Num(lambda v: v > 0, "{} must be > 0", int)
Whole = Num(lambda v: v >= 0, "{} must be >= 0", int)
Positive = Num(lambda v: v > 0, "{} must be > 0")
NonNegative = Num(lambda v: v >= 0, "{} must be >= 0")
Unit = Num(lambda v: 0 < v < 1, "{} must be inside (0, 1)")
Share = Num(lambda v: 0 <= v < 1, "{} must be inside [0, 1) (0: off)")
Split = record("Split", train=Unit, val=Unit, test=Unit)
Generated = record("Generated", n_images=Count, n_identities=Num(lambda v: v >= 2, "{} must be >= 2", int),
                   difficulty=NonNegative, target_fraction=(Optional[Unit], None))  # the face task only
Lfw = record("Lfw", target=Checked(Str, lambda v, _: (not v or "/" in v)
                                   and f"'{v}' is not an LFW folder name such as George_W_Bush"), n_other=Count,
             download=Bool)
# The class each FER2013 label becomes; a label left out (or null) is dropped.
Fer2013 = record("Fer2013", **{label: (Optional[Str], None) for label in FER2013_LABELS})
# img_size: below 32 px resnet18/vgg16 downsample the image to nothing; above 1024 a split no longer fits in memory.
# generated, lfw, fer2013: a source's own block, absent where the task uses another source.
DataParams = record(
    "DataParams", source=Literal["generated", "folder", "lfw", "fer2013"], path=Optional[Str],
    classes=Checked(tuple[Str, ...], class_names),
    img_size=Checked(Annotated[int, Strict()], lambda v, _: f"{v} is under 32; use 32 or more" if v < 32
                     else f"{v} is over 1024; use 1024 or less" if v > 1024 else None),
    split=Checked(Split, lambda s, _: abs(s.train + s.val + s.test - 1) > 1e-6
                  and f"train + val + test = {s.train + s.val + s.test:g}; they must add up to 1"),
    max_bad_fraction=Num(lambda v: 0 <= v < 1, "{} must be inside [0, 1) (0: any unreadable file stops prepare)"),
    faces=Literal["none", "detect"], min_side=Count, near_duplicates=Literal["group", "drop", "keep"],
    generated=(Optional[Generated], None), lfw=(Optional[Lfw], None), fer2013=(Optional[Fer2013], None))
Augment = record(
    "Augment", hflip=Bool,
    crop_scale=Checked(tuple[Num(), ...], lambda v, _: not (len(v) == 2 and 0 < v[0] <= v[1] <= 1) and (
        f"{list(v)} must be [low, high] with 0 < low <= high <= 1 (the share of the image's area a crop keeps; "
        f"[1.0, 1.0]: no crop)")),
    rotation=Num(lambda v: 0 <= v <= 180, "{} must be inside [0, 180] degrees (0: off)"), brightness=Share,
    contrast=Share, erasing=Num(lambda v: 0 <= v <= 1, "{} must be inside [0, 1] (a probability; 0: off)"))
# The one definition of "no augmentation": dataclasses.replace(AUGMENT_OFF, hflip=True) keeps only the flip.
AUGMENT_OFF = Augment(hflip=False, crop_scale=(1.0, 1.0), rotation=0.0, brightness=0.0, contrast=0.0, erasing=0.0)
# augment: absent means train.augment; a mapping overrides some of its keys.
Recipe = record(
    "Recipe", arch=Literal["vgg16", "resnet18"], weights=Literal["imagenet", "none"],
    frozen=Checked(tuple[Str, ...], frozen_modules), head_hidden=Whole,
    dropout=Num(lambda v: 0 <= v < 1, "{} must be inside [0, 1)"), optimizer=Literal["adam", "adamw", "sgd"],
    lr=Positive, momentum=NonNegative, weight_decay=NonNegative, epochs=Count, batch_size=Count,
    schedule=Literal["none", "cosine", "step"], step_size=Count, gamma=Positive, augment=(Optional[Augment], None))
TrainParams = record(
    "TrainParams", augment=Augment, class_weights=Literal["none", "balanced"],
    select_by=Literal["val_loss", "val_macro_f1"], label_smoothing=Share, tta_flip=Bool, eval_batch_size=Count,
    threads=Count, patience=Whole, vanishing_grad_norm=Positive,
    exploding_grad_norm=Checked(Positive, lambda v, earlier: v <= earlier.get("vanishing_grad_norm", 0)
                                and f"{v} must be above vanishing_grad_norm ({earlier['vanishing_grad_norm']})"),
    devices=Count, nodes=Count, rdzv_endpoint=Str, device=Literal["auto", "cpu", "cuda"],
    precision=Literal["auto", "fp32", "bf16"], compile=Bool, calibrate=Literal["none", "temperature"])
WandbParams = record("WandbParams", mode=Literal["offline", "online", "disabled"], project=Str, entity=Optional[Str],
                     dir=Str, watch_freq=Count)
# data and models are mappings ({task: ...}, {recipe: ...}) with every task and recipe required
Tasks = with_config(FORBID)(TypedDict("Tasks", {task: DataParams for task in TASKS}))
Recipes = with_config(FORBID)(TypedDict("Recipes", {recipe: Recipe for recipe in RECIPES}))
Params = record("Params", seed=Num(lambda v: 0 <= v <= 2**32 - 1, "{} must be inside [0, 4294967295] (numpy and "
                                   "scikit-learn seeds)", int), data=Tasks, models=Recipes, train=TrainParams,
                wandb=WandbParams)
