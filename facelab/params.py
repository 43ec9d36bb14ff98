"""Params: the one loader that reads params.yaml, validates it and returns typed, frozen objects."""
from __future__ import annotations

import dataclasses
import difflib
import typing
from dataclasses import dataclass, field
from pathlib import Path

import yaml

from facelab.errors import ParamsError

TASKS = ("face", "emotion")
RECIPES = ("vgg16_finetune", "resnet18_scratch", "resnet18_pretrained")
SOURCES = ("generated", "folder", "lfw", "fer2013")
# FER2013's seven labels: the CSV's emotion column holds their index, the image-folder release their names.
FER2013_LABELS = ("angry", "disgust", "fear", "happy", "sad", "surprise", "neutral")
ARCHS = ("vgg16", "resnet18")
WEIGHTS = ("imagenet", "none")
OPTIMIZERS = ("adam", "adamw", "sgd")
SCHEDULES = ("none", "cosine", "step")
WANDB_MODES = ("offline", "online", "disabled")
DEVICES = ("auto", "cpu", "cuda")
PRECISIONS = ("auto", "fp32", "bf16")
FACES = ("none", "detect")
CLASS_WEIGHTS = ("none", "balanced")
SELECT_BY = ("val_loss", "val_macro_f1")
# The generated source draws these exact classes; label i of the generator is classes[i].
GENERATED_CLASSES = {"face": ("other", "target"), "emotion": ("angry", "happy", "sad")}
MIN_IMG_SIZE = 32  # below this, resnet18/vgg16 downsample the image to nothing
MAX_IMG_SIZE = 1024  # above this, one decoded split of a few thousand images no longer fits in memory
MAX_SEED = 2**32 - 1  # numpy's and scikit-learn's seeds are unsigned 32-bit
MAX_GENERATED_IMG_SIZE = 512  # the face generator draws at twice the size; larger would take minutes per image
# Top-level modules of each torchvision architecture: models.<recipe>.frozen names these or their children
# ("layer1", "layer1.0"); the model factory checks a child's full name against the built model.
ARCH_MODULES = {"vgg16": ("features", "avgpool", "classifier"),
                "resnet18": ("conv1", "bn1", "relu", "maxpool", "layer1", "layer2", "layer3", "layer4", "avgpool", "fc")}



@dataclass(frozen=True)
class Split:
    train: float
    val: float
    test: float


@dataclass(frozen=True)
class Generated:
    n_images: int
    n_identities: int
    difficulty: float = 1.0
    target_fraction: typing.Optional[float] = None


@dataclass(frozen=True)
class Lfw:
    """Labeled Faces in the Wild as a binary task: one person (classes[1]) against a sample of everybody else."""
    target: str           # a person's folder name in LFW, e.g. George_W_Bush
    n_other: int          # images of other people, drawn from the seed
    download: bool = True  # false: never touch the network, fail if the cache is missing


@dataclass(frozen=True)
class Fer2013:
    """Which class each FER2013 label becomes; null drops that label's images."""
    angry: typing.Optional[str] = None
    disgust: typing.Optional[str] = None
    fear: typing.Optional[str] = None
    happy: typing.Optional[str] = None
    sad: typing.Optional[str] = None
    surprise: typing.Optional[str] = None
    neutral: typing.Optional[str] = None


@dataclass(frozen=True)
class DataParams:
    source: str
    path: typing.Optional[str]
    classes: tuple[str, ...]
    img_size: int
    split: Split
    generated: typing.Optional[Generated] = None
    max_bad_fraction: float = 0.05  # prepare fails when more of the files than this cannot be read
    lfw: typing.Optional[Lfw] = None
    fer2013: typing.Optional[Fer2013] = None
    faces: str = "none"  # none: images are face crops; detect: crop each to its largest face first


@dataclass(frozen=True)
class Augment:
    """Random changes to each training image, drawn per image and epoch from the run's seed. The defaults
    here are "off" (what an override leaves unset is taken from train.augment, not from these)."""
    hflip: bool = False                          # mirror left-right with probability 1/2
    crop_scale: tuple[float, ...] = (1.0, 1.0)   # random resized crop: area fraction kept, [low, high]
    rotation: float = 0.0                        # degrees, uniform in [-rotation, rotation]
    brightness: float = 0.0                      # pixel gain uniform in [1 - b, 1 + b]
    contrast: float = 0.0                        # contrast factor uniform in [1 - c, 1 + c]
    erasing: float = 0.0                         # probability of blanking one random rectangle

    def geometric(self) -> bool:
        return tuple(self.crop_scale) != (1.0, 1.0) or self.rotation > 0

    def beyond_flip(self) -> list[str]:
        """The settings that change pixels other than by a mirror (all need the whole network per step)."""
        off = Augment()
        return [name for name in ("crop_scale", "rotation", "brightness", "contrast", "erasing")
                if getattr(self, name) != getattr(off, name)]


@dataclass(frozen=True)
class Recipe:
    arch: str
    weights: str
    frozen: tuple[str, ...]
    head_hidden: int  # 0: replace only the last layer; >0: a new two-layer head of this width
    dropout: float    # dropout before the new head's last layer (when head_hidden > 0)
    optimizer: str
    lr: float
    momentum: float
    weight_decay: float
    epochs: int
    batch_size: int
    schedule: str = "none"  # none | cosine | step (per epoch)
    step_size: int = 5      # step schedule: epochs between drops
    gamma: float = 0.1      # step schedule: lr factor at each drop
    augment: typing.Optional[Augment] = None  # None: train.augment; a mapping overrides some of its keys


@dataclass(frozen=True)
class TrainParams:
    augment: Augment
    eval_batch_size: int
    threads: int
    class_weights: str = "none"        # none | balanced: loss weights n / (classes x count), from the train split
    select_by: str = "val_loss"        # which epoch's weights are kept: val_loss | val_macro_f1 (ties: lower val loss)
    label_smoothing: float = 0.0       # CrossEntropyLoss(label_smoothing=...) in training; val loss stays plain
    tta_flip: bool = False             # evaluate: average the logits of each test image and its mirror
    patience: int = 0                 # early stopping: epochs without a new best val loss; 0 = off
    vanishing_grad_norm: float = 1e-7  # a trained layer whose gradient norm falls below: vanishing
    exploding_grad_norm: float = 1e3   # a layer whose gradient norm rises above: exploding
    devices: int = 1                   # processes per node under torchrun (GPUs, or CPU processes)
    nodes: int = 1                     # machines; more than 1 needs rdzv_endpoint reachable by all
    rdzv_endpoint: str = "localhost:0"  # torchrun rendezvous host:port; port 0 picks a free one
    device: str = "auto"               # auto: CUDA when present (the in-memory GPU path), else CPU
    precision: str = "auto"            # auto: bf16 autocast on CUDA, fp32 on CPU
    compile: bool = False              # torch.compile the trained part of the model


@dataclass(frozen=True)
class WandbParams:
    mode: str
    project: str
    entity: typing.Optional[str] = None
    dir: str = "."
    watch_freq: int = 10  # wandb.watch: gradient and parameter histograms every N batches


@dataclass(frozen=True)
class Params:
    seed: int
    data: dict[str, DataParams]
    models: dict[str, Recipe]
    train: TrainParams
    wandb: WandbParams
    raw: dict = field(repr=False, compare=False, default_factory=dict)


def load_params(path: str | Path = "params.yaml") -> Params:
    """Read and validate params.yaml; raise ParamsError naming the first bad key."""
    path = Path(path)
    if not path.is_file():
        raise ParamsError(f"{path}: file not found; run from the repository root or pass --params")
    raw = read_yaml(path) or {}
    return parse_params(raw, source=str(path))


class _UniqueKeyLoader(yaml.SafeLoader):
    """YAML's safe loader, except that a key given twice in one mapping is an error, not the last one silently."""

    def construct_mapping(self, node, deep=False):
        seen = {}
        for key_node, _ in node.value:
            key = self.construct_object(key_node, deep=deep)
            if key in seen:
                raise ParamsError(f"{self.name}: key '{key}' is given twice, at line {seen[key] + 1} and line "
                                  f"{key_node.start_mark.line + 1}; keep one")
            seen[key] = key_node.start_mark.line
        return super().construct_mapping(node, deep=deep)


def read_yaml(path: Path):
    """params.yaml's mapping; a syntax error names the file, line and column, a repeated key both lines."""
    try:
        text = path.read_text()
    except (OSError, UnicodeDecodeError) as error:
        raise ParamsError(f"{path}: cannot be read ({error})") from error
    loader = _UniqueKeyLoader(text)
    loader.name = str(path)
    try:
        return loader.get_single_data()
    except yaml.MarkedYAMLError as error:
        mark = error.problem_mark
        where = f"line {mark.line + 1}, column {mark.column + 1}" if mark else "unknown position"
        raise ParamsError(f"{path}: YAML syntax error at {where}: {error.problem}; fix that line") from error
    finally:
        loader.dispose()


def parse_params(raw: dict, source: str = "params.yaml") -> Params:
    """Validate a params mapping (as read from YAML) and build the typed Params."""
    _expect(isinstance(raw, dict), source, raw, "a mapping")
    _check_keys(raw, ("seed", "data", "models", "train", "wandb"), source, required=True)
    data = _section(raw, "data", TASKS, DataParams)
    models = _section(_merge_augment(raw), "models", RECIPES, Recipe)
    params = Params(
        seed=_convert(raw["seed"], int, "seed"),
        data=data,
        models=models,
        train=_build(TrainParams, raw["train"], "train"),
        wandb=_build(WandbParams, raw["wandb"], "wandb"),
        raw=raw,
    )
    _check_values(params)
    if not 0 <= params.seed <= MAX_SEED:
        raise ParamsError(f"seed: {params.seed} must be inside [0, {MAX_SEED}] (numpy and scikit-learn seeds)")
    return params


def augmentation(recipe: Recipe, settings: TrainParams) -> Augment:
    """The augmentation a recipe trains with: its own override, else train.augment."""
    return recipe.augment if recipe.augment is not None else settings.augment


def _merge_augment(raw: dict) -> dict:
    """models.<recipe>.augment lists only the keys it changes: complete it from train.augment, so a recipe's
    resolved augmentation is saved whole beside its model."""
    base = (raw.get("train") or {}).get("augment") if isinstance(raw.get("train"), dict) else None
    models = raw.get("models")
    if not isinstance(base, dict) or not isinstance(models, dict):
        return raw
    merged = {name: ({**recipe, "augment": {**base, **recipe["augment"]}}
                     if isinstance(recipe, dict) and isinstance(recipe.get("augment"), dict) else recipe)
              for name, recipe in models.items()}
    return {**raw, "models": merged}


def parse_recipe(raw: dict, where: str = "recipe") -> Recipe:
    """A recipe saved beside a model file, read back with the same checks as params.yaml."""
    return _build(Recipe, raw, where)


def _section(raw: dict, name: str, allowed: tuple[str, ...], cls) -> dict:
    section = raw[name]
    _expect(isinstance(section, dict), name, section, f"a mapping with keys {list(allowed)}")
    _check_keys(section, allowed, name, required=True)
    return {key: _build(cls, section[key], f"{name}.{key}") for key in allowed}


def _build(cls, value, where: str):
    """Build dataclass `cls` from a mapping, converting each field to its annotated type."""
    _expect(isinstance(value, dict), where, value, "a mapping")
    hints = typing.get_type_hints(cls)
    fields = [f for f in dataclasses.fields(cls) if f.name != "raw"]
    required = [f.name for f in fields if f.default is dataclasses.MISSING
                and f.default_factory is dataclasses.MISSING]
    _check_keys(value, [f.name for f in fields], where, required=False)
    missing = [name for name in required if name not in value]
    if missing:
        raise ParamsError(f"{where}: missing key(s) {missing}; add them to params.yaml")
    kwargs = {name: _convert(value[name], hints[name], f"{where}.{name}") for name in value}
    return cls(**kwargs)


def _convert(value, hint, where: str):
    origin, args = typing.get_origin(hint), typing.get_args(hint)
    if origin is typing.Union:  # Optional[X]
        return None if value is None else _convert(value, args[0], where)
    if dataclasses.is_dataclass(hint):
        return _build(hint, value, where)
    if origin is tuple:
        _expect(isinstance(value, list), where, value, "a list")
        return tuple(_convert(item, args[0], f"{where}[{i}]") for i, item in enumerate(value))
    if hint is bool:
        _expect(isinstance(value, bool), where, value, "true or false")
        return value
    if hint is int:
        _expect(isinstance(value, int) and not isinstance(value, bool), where, value, "an integer")
        return value
    if hint is float:
        _expect(isinstance(value, (int, float)) and not isinstance(value, bool), where, value, "a number")
        return float(value)
    if hint is str:
        _expect(isinstance(value, str), where, value, "a string")
        return value
    raise TypeError(f"params.py cannot convert type {hint} at {where}")  # a bug in this module


def _check_keys(mapping: dict, allowed, where: str, required: bool) -> None:
    for key in mapping:
        if key not in allowed:
            close = closest_key(str(key), allowed)
            hint = f"did you mean '{close}'?" if close else f"allowed keys: {list(allowed)}"
            raise ParamsError(f"{where}: unknown key '{key}'; {hint}")
    if required:
        missing = [key for key in allowed if key not in mapping]
        if missing:
            raise ParamsError(f"{where}: missing key(s) {missing}; add them to params.yaml")


def closest_key(key: str, allowed) -> str | None:
    """The likeliest intended key: a near spelling, else an abbreviation (lr for learning_rate)."""
    close = difflib.get_close_matches(key, list(allowed), n=1)
    if close:
        return close[0]
    abbreviations = [name for name in allowed if name[0] == key[0] and _is_subsequence(name, key)]
    return abbreviations[0] if abbreviations else None


def _is_subsequence(short: str, long: str) -> bool:
    letters = iter(long)
    return all(char in letters for char in short)


def _expect(ok: bool, where: str, value, wanted: str) -> None:
    if not ok:
        raise ParamsError(f"{where}: expected {wanted}, got {value!r}")


def _one_of(value, allowed, where: str) -> None:
    if value not in allowed:
        raise ParamsError(f"{where}: '{value}' is not one of {list(allowed)}")


def _check_values(params: Params) -> None:
    for task, data in params.data.items():
        _check_data(task, data, f"data.{task}")
    for name, recipe in params.models.items():
        where = f"models.{name}"
        _one_of(recipe.arch, ARCHS, f"{where}.arch")
        _check_frozen(recipe, f"{where}.frozen")
        _one_of(recipe.weights, WEIGHTS, f"{where}.weights")
        _one_of(recipe.optimizer, OPTIMIZERS, f"{where}.optimizer")
        _one_of(recipe.schedule, SCHEDULES, f"{where}.schedule")
        _positive(recipe.step_size, f"{where}.step_size")
        _positive(recipe.gamma, f"{where}.gamma")
        _positive(recipe.lr, f"{where}.lr")
        _positive(recipe.epochs, f"{where}.epochs")
        _positive(recipe.batch_size, f"{where}.batch_size")
        if recipe.head_hidden < 0 or not 0 <= recipe.dropout < 1:
            raise ParamsError(f"{where}: head_hidden must be >= 0 and dropout inside [0, 1)")
        if recipe.weight_decay < 0 or recipe.momentum < 0:
            raise ParamsError(f"{where}: weight_decay and momentum must be >= 0")
        if recipe.augment is not None:
            _check_augment(recipe.augment, f"{where}.augment")
    _check_augment(params.train.augment, "train.augment")
    _one_of(params.train.class_weights, CLASS_WEIGHTS, "train.class_weights")
    _one_of(params.train.select_by, SELECT_BY, "train.select_by")
    if not 0 <= params.train.label_smoothing < 1:
        raise ParamsError(f"train.label_smoothing: {params.train.label_smoothing} must be inside [0, 1) (0: off)")
    _positive(params.train.eval_batch_size, "train.eval_batch_size")
    _positive(params.train.threads, "train.threads")
    _positive(params.train.devices, "train.devices")
    _positive(params.train.nodes, "train.nodes")
    _positive(params.train.vanishing_grad_norm, "train.vanishing_grad_norm")
    if params.train.exploding_grad_norm <= params.train.vanishing_grad_norm:
        raise ParamsError("train.exploding_grad_norm: must be above train.vanishing_grad_norm")
    _one_of(params.train.device, DEVICES, "train.device")
    _one_of(params.train.precision, PRECISIONS, "train.precision")
    if params.train.patience < 0:
        raise ParamsError(f"train.patience: {params.train.patience} must be >= 0 (0 turns early stopping off)")
    _positive(params.wandb.watch_freq, "wandb.watch_freq")
    _one_of(params.wandb.mode, WANDB_MODES, "wandb.mode")


def _check_data(task: str, data: DataParams, where: str) -> None:
    _one_of(data.source, SOURCES, f"{where}.source")
    if data.img_size < MIN_IMG_SIZE:
        raise ParamsError(f"{where}.img_size: {data.img_size} is under {MIN_IMG_SIZE}; use {MIN_IMG_SIZE} or more")
    if data.img_size > MAX_IMG_SIZE:
        raise ParamsError(f"{where}.img_size: {data.img_size} is over {MAX_IMG_SIZE}; use {MAX_IMG_SIZE} or less")
    for name in data.classes:
        if not plain_folder_name(name):
            raise ParamsError(f"{where}.classes: '{name}' is not a plain folder name; a class name is the name of "
                              f"a folder under data.{task}.path, without '/', '\\', '.' or '..'")
    if len(set(data.classes)) != len(data.classes) or len(data.classes) < 2:
        raise ParamsError(f"{where}.classes: need at least 2 distinct class names, got {list(data.classes)}")
    _check_split(data.split, f"{where}.split")
    _one_of(data.faces, FACES, f"{where}.faces")
    if data.faces == "detect" and data.source == "generated":
        raise ParamsError(f"{where}.faces: 'detect' finds faces in photos; the generated faces are already face "
                          f"crops: use faces: none, or a folder/lfw/fer2013 source")
    if not 0 <= data.max_bad_fraction < 1:
        raise ParamsError(f"{where}.max_bad_fraction: {data.max_bad_fraction} must be inside [0, 1) "
                          f"(0: any unreadable file stops prepare)")
    if data.source in ("folder", "fer2013") and not data.path:
        wanted = {"folder": "a path to <path>/<class_name>/ folders",
                  "fer2013": "a path to fer2013.csv or to the release folder holding train/ and test/"}
        raise ParamsError(f"{where}.path: source '{data.source}' needs {wanted[data.source]}")
    if data.source == "generated":
        _check_generated(task, data, where)
    if data.source == "lfw":
        _check_lfw(data, where)
    if data.source == "fer2013":
        _check_fer2013(data, where)


def _check_augment(augment: Augment, where: str) -> None:
    scale = augment.crop_scale
    if len(scale) != 2 or not 0 < scale[0] <= scale[1] <= 1:
        raise ParamsError(f"{where}.crop_scale: {list(scale)} must be [low, high] with 0 < low <= high <= 1 "
                          f"(the share of the image's area a crop keeps; [1.0, 1.0]: no crop)")
    if not 0 <= augment.rotation <= 180:
        raise ParamsError(f"{where}.rotation: {augment.rotation} must be inside [0, 180] degrees (0: off)")
    for name in ("brightness", "contrast"):
        if not 0 <= getattr(augment, name) < 1:
            raise ParamsError(f"{where}.{name}: {getattr(augment, name)} must be inside [0, 1) (0: off)")
    if not 0 <= augment.erasing <= 1:
        raise ParamsError(f"{where}.erasing: {augment.erasing} must be inside [0, 1] (a probability; 0: off)")


def plain_folder_name(name: str) -> bool:
    """A name that is one folder under its parent: not empty, not '.' or '..', no separator."""
    return bool(name) and name not in (".", "..") and "/" not in name and "\\" not in name


def _check_frozen(recipe: Recipe, where: str) -> None:
    allowed = ARCH_MODULES[recipe.arch]
    for name in recipe.frozen:
        if name.split(".")[0] not in allowed:
            close = closest_key(name.split(".")[0], allowed)
            hint = f"did you mean '{close}'? " if close else ""
            raise ParamsError(f"{where}: '{name}' is not a module of {recipe.arch}; {hint}"
                              f"its top-level modules are {list(allowed)}")


def _check_lfw(data: DataParams, where: str) -> None:
    if data.lfw is None:
        raise ParamsError(f"{where}.lfw: missing; source 'lfw' needs lfw: {{target: <Person_Name>, n_other: <count>}}")
    if len(data.classes) != 2:
        raise ParamsError(f"{where}.classes: source 'lfw' is a binary task [others, target person], "
                          f"got {list(data.classes)}")
    if not data.lfw.target or "/" in data.lfw.target:
        raise ParamsError(f"{where}.lfw.target: '{data.lfw.target}' is not an LFW folder name such as George_W_Bush")
    _positive(data.lfw.n_other, f"{where}.lfw.n_other")


def _check_fer2013(data: DataParams, where: str) -> None:
    if data.fer2013 is None:
        raise ParamsError(f"{where}.fer2013: missing; source 'fer2013' needs a class (or null) for each "
                          f"FER2013 label {list(FER2013_LABELS)}")
    mapping = dataclasses.asdict(data.fer2013)
    for label, name in mapping.items():
        if name is not None:
            _one_of(name, data.classes, f"{where}.fer2013.{label}")
    unfed = [name for name in data.classes if name not in mapping.values()]
    if unfed:
        raise ParamsError(f"{where}.fer2013: no FER2013 label maps to class(es) {unfed}; "
                          f"set one of {list(FER2013_LABELS)} to each")


def _check_split(split: Split, where: str) -> None:
    for name in ("train", "val", "test"):
        value = getattr(split, name)
        if not 0 < value < 1:
            raise ParamsError(f"{where}.{name}: {value} must be inside (0, 1)")
    total = split.train + split.val + split.test
    if abs(total - 1) > 1e-6:
        raise ParamsError(f"{where}: train + val + test = {total:g}; they must add up to 1")


def _check_generated(task: str, data: DataParams, where: str) -> None:
    if tuple(data.classes) != GENERATED_CLASSES[task]:
        raise ParamsError(f"{where}.classes: the generated {task} data has classes "
                          f"{list(GENERATED_CLASSES[task])}, got {list(data.classes)}")
    if data.img_size > MAX_GENERATED_IMG_SIZE:
        raise ParamsError(f"{where}.img_size: {data.img_size} is over {MAX_GENERATED_IMG_SIZE}, the largest the "
                          f"generated faces are drawn at; use {MAX_GENERATED_IMG_SIZE} or less")
    gen = data.generated
    if gen is None:
        raise ParamsError(f"{where}.generated: missing; source 'generated' needs n_images and n_identities")
    _positive(gen.n_images, f"{where}.generated.n_images")
    if gen.difficulty < 0:
        raise ParamsError(f"{where}.generated.difficulty: {gen.difficulty} must be >= 0")
    if gen.n_identities < 2:
        raise ParamsError(f"{where}.generated.n_identities: {gen.n_identities}; need at least 2")
    if task == "face" and (gen.target_fraction is None or not 0 < gen.target_fraction < 1):
        raise ParamsError(f"{where}.generated.target_fraction: {gen.target_fraction} must be inside (0, 1)")


def _positive(value, where: str) -> None:
    if not value > 0:
        raise ParamsError(f"{where}: {value} must be > 0")
