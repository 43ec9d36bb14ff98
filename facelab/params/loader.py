"""Params loader: params.yaml read as DVC reads it (YAML 1.2), validated against the schema, returned typed and frozen."""
from __future__ import annotations

import dataclasses
import json
import typing
from dataclasses import dataclass, field
from pathlib import Path

from pydantic import TypeAdapter, ValidationError
from ruamel.yaml import YAML, YAMLError
from ruamel.yaml.nodes import MappingNode, SequenceNode

from facelab.errors import ParamsError
from facelab.params.checks import check_augment, check_data, check_recipe, closest_key
from facelab.params.schema import Augment, DataParams, Recipe, Schema, TrainParams, WandbParams


@dataclass(frozen=True)
class Params:
    seed: int
    data: dict[str, DataParams]
    models: dict[str, Recipe]
    train: TrainParams
    wandb: WandbParams
    raw: dict = field(repr=False, compare=False)


def load_params(path: str | Path = "params.yaml") -> Params:
    """Read and validate params.yaml; raise ParamsError naming the first bad key (and its line)."""
    path = Path(path)
    if not path.is_file():
        raise ParamsError(f"{path}: file not found; run from the repository root or pass --params")
    raw, lines = read_yaml(path)
    return parse_params(raw or {}, source=str(path), lines=lines)


def read_yaml(path: Path) -> tuple[object, dict[tuple, int]]:
    """params.yaml's values as DVC reads them (ruamel, YAML 1.2: `1e-3` is a number, `no` a string), and the line
    of each key; a syntax error names the line to fix, a repeated key both of its lines."""
    try:
        text = path.read_text()
    except (OSError, UnicodeDecodeError) as error:
        raise ParamsError(f"{path}: cannot be read ({error})") from error
    try:
        lines = key_lines(YAML(typ="safe", pure=True).compose(text), (), str(path))
        return YAML(typ="safe", pure=True).load(text), lines
    except YAMLError as error:
        raise ParamsError(syntax_message(path, error)) from error


def syntax_message(path: Path, error: YAMLError) -> str:
    mark, context = getattr(error, "problem_mark", None), getattr(error, "context_mark", None)
    if mark is None:
        return f"{path}: YAML syntax error ({error}); fix it"
    where = f"line {mark.line + 1}, column {mark.column + 1}"
    text = f"{path}: YAML syntax error at {where}: {error.problem}"
    if context is not None and context.line < mark.line and "stream end" in str(error.problem):
        # an unclosed bracket or quote is found only where the file ends: the line to fix is where it opened
        return f"{text} ({error.context} at line {context.line + 1}); fix line {context.line + 1}"
    return f"{text}; fix that line"


def key_lines(node, where: tuple, name: str) -> dict[tuple, int]:
    """{key path: 1-based line} for every mapping key; a key given twice in one mapping is an error."""
    found = {}
    if isinstance(node, MappingNode):
        for key, value in node.value:
            here = where + (key.value,)
            if here in found:
                raise ParamsError(f"{name}: key '{'.'.join(map(str, here))}' is given twice, at line {found[here]} "
                                  f"and line {key.start_mark.line + 1}; keep one")
            found[here] = key.start_mark.line + 1
            found.update(key_lines(value, here, name))
    elif isinstance(node, SequenceNode):
        for i, item in enumerate(node.value):
            found.update(key_lines(item, where + (i,), name))
    return found


def parse_params(raw: dict, source: str = "params.yaml", lines: dict | None = None) -> Params:
    """Validate a params mapping (as read from YAML) and build the typed Params."""
    raw = json.loads(json.dumps(raw))  # plain dicts and lists: what W&B's config and the model files record
    if not isinstance(raw, dict):
        raise ParamsError(f"{source}: expected a mapping of seed, data, models, train and wandb, got {raw!r}")
    schema = validate(Schema, merge_augment(raw), lines)
    params = Params(seed=schema.seed, data={f.name: getattr(schema.data, f.name) for f in fields(schema.data)},
                    models={f.name: getattr(schema.models, f.name) for f in fields(schema.models)},
                    train=schema.train, wandb=schema.wandb, raw=raw)
    for task, data in params.data.items():
        check_data(task, data)
    for name, recipe in params.models.items():
        check_recipe(recipe, f"models.{name}")
    check_augment(params.train.augment, "train.augment")
    if params.train.exploding_grad_norm <= params.train.vanishing_grad_norm:
        raise ParamsError("train.exploding_grad_norm: must be above train.vanishing_grad_norm")
    return params


def parse_recipe(raw: dict, where: str = "recipe") -> Recipe:
    """A recipe saved beside a model file, read back with the same checks as params.yaml."""
    recipe = validate(Recipe, raw, None, where)
    check_recipe(recipe, where)
    return recipe


def augmentation(recipe: Recipe, settings: TrainParams) -> Augment:
    """The augmentation a recipe trains with: its own override, else train.augment."""
    return recipe.augment if recipe.augment is not None else settings.augment


def merge_augment(raw: dict) -> dict:
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


def fields(instance) -> tuple:
    return dataclasses.fields(instance)


def validate(cls, raw, lines: dict | None, prefix: str = ""):
    try:
        return TypeAdapter(cls).validate_python(raw)
    except ValidationError as error:
        raise ParamsError(error_message(cls, error.errors(), lines, prefix)) from None


WANTED = {"int": "an integer", "float": "a number", "bool": "true or false", "string": "a string",
          "tuple": "a list", "dataclass": "a mapping", "list": "a list"}


def error_message(cls, errors: list[dict], lines: dict | None, prefix: str) -> str:
    """pydantic's first error as one line in our words: the key, what is wrong, how to fix it."""
    first = min(errors, key=lambda e: e["type"] != "unexpected_keyword_argument")  # a typo explains "missing"
    loc = tuple(first["loc"])
    kind, value = first["type"], first["input"]
    if kind == "missing":
        parent = loc[:-1]
        missing = [e["loc"][-1] for e in errors if e["type"] == "missing" and tuple(e["loc"][:-1]) == parent]
        return f"{dotted(prefix, parent)}: missing key(s) {missing}; add them to params.yaml (see docs/training.md)"
    if kind == "unexpected_keyword_argument":
        allowed = [f.name for f in dataclasses.fields(field_type(cls, loc[:-1]))]
        close = closest_key(str(loc[-1]), allowed)
        text = f"unknown key '{loc[-1]}'; " + (f"did you mean '{close}'?" if close else f"allowed keys: {allowed}")
        return at_line(f"{dotted(prefix, loc[:-1])}: {text}", lines, loc)
    if kind == "literal_error":
        allowed = list(typing.get_args(field_type(cls, loc)))
        text = f"'{value}' is not one of {allowed}"
    elif kind == "value_error":
        text = str(first["ctx"]["error"])
    elif kind in ("greater_than_equal", "less_than_equal", "greater_than", "less_than"):
        bound = {"greater_than_equal": ">=", "less_than_equal": "<=", "greater_than": ">", "less_than": "<"}[kind]
        text = f"{value} must be {bound} {next(iter(first['ctx'].values()))}"
    elif kind.split("_")[0] in WANTED:
        text = f"expected {WANTED[kind.split('_')[0]]}, got {value!r}"
        if isinstance(value, bool) and kind == "string_type":  # YAML 1.2: true/false are the only booleans
            text += f"; quote it: '{str(value).lower()}'"
        if kind == "tuple_type" and loc[-1] == "crop_scale":
            text = f"{value} must be [low, high] with 0 < low <= high <= 1"
    else:
        text = f"{first['msg']} (got {value!r})"
    return at_line(f"{dotted(prefix, loc)}: {text}", lines, loc)


def dotted(prefix: str, loc: tuple) -> str:
    parts = [prefix] if prefix else []
    for part in loc:
        if isinstance(part, int) and parts:
            parts[-1] += f"[{part}]"
        else:
            parts.append(str(part))
    return ".".join(parts) or "params"


def at_line(text: str, lines: dict | None, loc: tuple) -> str:
    """Adds where in params.yaml the key is, when read from a file."""
    for end in range(len(loc), 0, -1):
        if lines and loc[:end] in lines:
            return f"{text} (params.yaml line {lines[loc[:end]]})"
    return text


def field_type(cls, loc: tuple):
    """The annotated type at a location of the schema, through nested dataclasses and Optional."""
    for part in loc:
        if isinstance(part, int):
            continue
        hint = typing.get_type_hints(cls, include_extras=False)[part]
        args = [a for a in typing.get_args(hint) if a is not type(None)]
        cls = args[0] if typing.get_origin(hint) is typing.Union else hint
    return cls
