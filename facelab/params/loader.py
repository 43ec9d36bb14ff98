"""Params loader: params.yaml, read as DVC reads it (YAML 1.2), validated by the schema, returned typed and frozen."""
from __future__ import annotations

import dataclasses
import json
import types
import typing
from pathlib import Path

from pydantic import TypeAdapter, ValidationError

from facelab.errors import ParamsError, closest_key
from facelab.params.checks import check_data
from facelab.params.schema import Augment, KeyProblem, Params, Recipe, TrainParams
from facelab.yaml12 import load_yaml

WANTED = {"int": "an integer", "float": "a number", "bool": "true or false", "string": "a string", "tuple": "a list",
          "dataclass": "a mapping", "dict": "a mapping", "list": "a list"}
UNKNOWN = ("unexpected_keyword_argument", "extra_forbidden")
T = typing.TypeVar("T")


def load_params(path: str | Path = "params.yaml") -> Params:
    """Read and validate params.yaml; raise ParamsError naming the first bad key (and its line)."""
    raw, lines = read_params(path)
    return parse_params(raw, str(path), lines)


def raw_params(path: str | Path = "params.yaml") -> dict:
    """params.yaml as plain dicts and lists, unvalidated: to change a setting in memory (a benchmark's --set, a
    test's smaller run) and then pass to parse_params, which checks it as load_params would."""
    return read_params(path)[0]


def read_params(path: str | Path) -> tuple[dict, dict[tuple, int]]:
    """The mapping params.yaml holds, read as DVC reads it (YAML 1.2), and each key path's line."""
    path = Path(path)
    if not path.is_file():
        raise ParamsError(f"{path}: file not found; run from the repository root or pass --params")
    try:
        raw, lines = load_yaml(path.read_text(), str(path), ParamsError)
    except (OSError, UnicodeDecodeError) as error:
        raise ParamsError(f"{path}: cannot be read ({error})") from error
    return mapping(raw or {}, str(path)), lines


def parse_params(raw: object, source: str = "params.yaml", lines: dict | None = None) -> Params:
    """The typed Params of a mapping read from YAML (`lines`: a key path's line, for the error)."""
    raw = mapping(json.loads(json.dumps(raw)), source)  # plain dicts and lists: what W&B and the model cards record
    params = validate(Params, merge_augment(raw), lines)
    for task, data in params.data.items():
        check_data(task, data)
    return params


def mapping(raw: object, source: str) -> dict:
    """raw when it is a mapping, else the ParamsError that says what params.yaml must hold."""
    if not isinstance(raw, dict):
        raise ParamsError(f"{source}: expected a mapping of seeds, data_seed, data, models, train and wandb, "
                          f"got {raw!r}")
    return raw


def parse_recipe(raw: dict, where: str = "recipe") -> Recipe:
    """A recipe saved beside a model file, read back with the same checks as params.yaml."""
    return validate(Recipe, raw, None, where)


def augmentation(recipe: Recipe, settings: TrainParams) -> Augment:
    """The augmentation a recipe trains with: its own override, else train.augment."""
    return recipe.augment if recipe.augment is not None else settings.augment


def merge_augment(raw: dict) -> dict:
    """Complete each models.<recipe>.augment (the keys it changes) from train.augment: saved whole beside the model."""
    base, models = (raw.get("train") or {}).get("augment"), raw.get("models")
    if not isinstance(base, dict) or not isinstance(models, dict):
        return raw
    return {**raw, "models": {name: {**recipe, "augment": {**base, **recipe["augment"]}}
                              if isinstance(recipe, dict) and isinstance(recipe.get("augment"), dict) else recipe
                              for name, recipe in models.items()}}


def validate(cls: type[T], raw: object, lines: dict | None, prefix: str = "") -> T:
    """`raw` as a `cls`, else pydantic's first error in our words: the key, what is wrong, how to fix it, its line."""
    try:
        return TypeAdapter(cls).validate_python(raw)
    except ValidationError as error:
        errors = error.errors()
    first = min(errors, key=lambda e: e["type"] not in UNKNOWN)  # a misspelt key explains a "missing" one
    loc, kind, value = tuple(first["loc"]), first["type"], first["input"]
    if kind == "missing":
        missing = [e["loc"][-1] for e in errors if e["type"] == "missing" and tuple(e["loc"][:-1]) == loc[:-1]]
        raise ParamsError(f"{dotted(prefix, loc[:-1])}: missing key(s) {missing}; add them to params.yaml (every key "
                          f"is required: params.yaml holds every default)")
    if kind in UNKNOWN:
        allowed = [field.name for field in dataclasses.fields(field_type(cls, loc[:-1]))]
        close = closest_key(str(loc[-1]), allowed)
        text = f"unknown key '{loc[-1]}'; " + (f"did you mean '{close}'?" if close else f"allowed keys: {allowed}")
        loc = loc[:-1]
    elif kind == "literal_error":
        text = f"'{value}' is not one of {list(typing.get_args(field_type(cls, loc)))}"
    elif kind == "value_error":
        problem = first["ctx"]["error"]
        if isinstance(problem, KeyProblem):  # a block's rule between its keys: shown at the key it names
            loc = (*loc, problem.key)
        text = str(problem).replace("{at}", dotted(prefix, loc[:-1]))
    elif kind.split("_")[0] in WANTED:
        text = f"expected {WANTED[kind.split('_')[0]]}, got {value!r}"
        if isinstance(value, bool) and kind == "string_type":  # YAML 1.2: true/false are the only booleans
            text += f"; quote it: '{str(value).lower()}'"
    else:
        text = f"{first['msg']} (got {value!r})"
    line = next((lines[loc[:end]] for end in range(len(loc), 0, -1) if lines and loc[:end] in lines), None)
    raise ParamsError(f"{dotted(prefix, loc)}: {text}" + (f" (params.yaml line {line})" if line else ""))


def dotted(prefix: str, loc: tuple) -> str:
    """('data', 'face', 'classes', 0) -> data.face.classes[0]"""
    text = ".".join([prefix] * bool(prefix) + [str(p) for p in loc if not isinstance(p, int)])
    return (text + "".join(f"[{p}]" for p in loc if isinstance(p, int))) or "params"


def field_type(cls: typing.Any, loc: tuple) -> typing.Any:
    """The annotated type at a location of the schema, through nested dataclasses and `X | None`."""
    for part in (p for p in loc if not isinstance(p, int)):
        hint = typing.get_type_hints(cls)[part]
        cls = typing.get_args(hint)[0] if typing.get_origin(hint) in (typing.Union, types.UnionType) else hint
    return cls
