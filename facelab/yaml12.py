"""YAML as DVC reads it (YAML 1.2: `no` is a string, `1e-3` a number), for params.yaml, dvc.lock and metrics
files."""
from __future__ import annotations

from ruamel.yaml import YAML, YAMLError
from ruamel.yaml.error import MarkedYAMLError
from ruamel.yaml.nodes import MappingNode, SequenceNode

from facelab.errors import UserError


def load_yaml(text: str, name: str, error: type[UserError] = UserError) -> tuple[object, dict[tuple, int]]:
    """The document and the 1-based line of each mapping key ({key path: line}). A syntax error or a key given twice
    raises `error`, naming the file (`name`) and the line to fix."""
    try:
        lines = key_lines(YAML(typ="safe", pure=True).compose(text), (), name, error)  # first: it names both lines
        return YAML(typ="safe", pure=True).load(text), lines
    except YAMLError as problem:
        # a reader's error (a character YAML does not allow) has no marks; the others mark where they are
        if not isinstance(problem, MarkedYAMLError) or problem.problem_mark is None:
            raise error(f"{name}: YAML syntax error ({problem}); fix it") from problem
        mark, start = problem.problem_mark, problem.context_mark
        text = f"{name}: YAML syntax error at line {mark.line + 1}, column {mark.column + 1}: {problem.problem}"
        if start is not None and start.line < mark.line and "stream end" in str(problem.problem):
            # an unclosed bracket is found only where the file ends: the line to fix is where it opened
            raise error(f"{text} ({problem.context} at line {start.line + 1}); fix line {start.line + 1}") from problem
        raise error(f"{text}; fix that line") from problem


def key_lines(node, where: tuple, name: str, error: type[UserError]) -> dict[tuple, int]:
    """{key path: 1-based line} for every mapping key; a key given twice in one mapping is an error."""
    found = {}
    for i, item in enumerate(node.value if isinstance(node, SequenceNode) else ()):
        found.update(key_lines(item, where + (i,), name, error))
    for key, value in node.value if isinstance(node, MappingNode) else ():
        here = where + (key.value,)
        if here in found:
            raise error(f"{name}: key '{'.'.join(map(str, here))}' is given twice, at line {found[here]} "
                        f"and line {key.start_mark.line + 1}; keep one")
        found[here] = key.start_mark.line + 1
        found.update(key_lines(value, here, name, error))
    return found
