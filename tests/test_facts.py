"""Every file name and name of facelab/names.py and facelab/paths.py is written there and nowhere else in the library
or the stages: a string literal (not a docstring or comment) naming one elsewhere is a second home that a rename
would miss."""
from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest

from tests.conftest import ROOT

# (what, pattern a string literal or f-string piece matches, the one file allowed to hold it)
FACTS = [
    ("the prepared folder's manifest", re.compile(r"manifest\.csv"), "facelab/paths.py"),
    ("the prepared folder's class list", re.compile(r"^classes\.json$|[/\\]classes\.json"), "facelab/paths.py"),
    ("a prepared folder's array file", re.compile(r"(images|labels|groups|own_test)\.npy"), "facelab/paths.py"),
    ("train's history file", re.compile(r"history\.csv"), "facelab/paths.py"),
    ("a history column or W&B key: (split, metric)",
     re.compile(r"^(train|val|test)/(loss|acc|macro_f1)|^(train|val|test)/$|^/(loss|acc|macro_f1)$"),
     "facelab/names.py"),
    ("LFW's cache folder", re.compile(r"^lfw_home$"), "facelab/data/sources.py"),
    ("the data.<task>.path key", re.compile(r"^data\.\w+\.path$|^data\.<task>\.path$|\.path$"),
     "facelab/data/sources.py"),
    ("cuBLAS's deterministic workspace", re.compile(r"^CUBLAS_WORKSPACE_CONFIG$"), "facelab/training/launcher.py"),
    ("matplotlib's file-only backend", re.compile(r"^Agg$"), "facelab/plotting.py"),
]
SPLIT_TUPLE = ("train", "val", "test")
# Module constants with one home each: defined nowhere else
CONSTANTS = {"SPLITS": "facelab/names.py", "METRICS": "facelab/names.py", "LABEL_METRICS": "facelab/names.py",
             "RANKED_BY": "facelab/evaluation/stats.py", "BOOTSTRAP": "facelab/evaluation/stats.py",
             "DPI": "facelab/plotting.py"}


def sources() -> list[Path]:
    return sorted([*(ROOT / "facelab").rglob("*.py"), *(ROOT / "stages").glob("*.py")])


def docstrings(tree: ast.AST) -> set[int]:
    """ids of the docstring nodes: prose may name a file, only code must not."""
    found = set()
    for node in ast.walk(tree):
        if isinstance(node, (ast.Module, ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef)) and node.body:
            first = node.body[0]
            if isinstance(first, ast.Expr) and isinstance(first.value, ast.Constant):
                found.add(id(first.value))
    return found


def second_homes(files: dict[str, str]) -> list[str]:
    """`path:line: what` for each fact written outside its home, in {relative path: source text}."""
    found = []
    for path, text in files.items():
        tree = ast.parse(text)
        skip = docstrings(tree)
        for node in ast.walk(tree):
            if isinstance(node, ast.Constant) and isinstance(node.value, str) and id(node) not in skip:
                found += [f"{path}:{node.lineno}: {what} ({node.value!r}; its home is {home})"
                          for what, pattern, home in FACTS if path != home and pattern.search(node.value)]
            elif (isinstance(node, ast.Tuple) and path != "facelab/names.py"
                  and tuple(getattr(e, "value", None) for e in node.elts) == SPLIT_TUPLE):
                found.append(f"{path}:{node.lineno}: the split tuple (its home is names.SPLITS)")
            elif isinstance(node, (ast.Assign, ast.AnnAssign)):
                targets = node.targets if isinstance(node, ast.Assign) else [node.target]
                found += [f"{path}:{node.lineno}: {t.id} defined again (its home is {CONSTANTS[t.id]})"
                          for t in targets if isinstance(t, ast.Name) and t.id in CONSTANTS
                          and path != CONSTANTS[t.id] and t.col_offset == 0]
    return found


def library() -> dict[str, str]:
    return {p.relative_to(ROOT).as_posix(): p.read_text() for p in sources()}


def test_each_file_name_split_and_score_name_has_one_home():
    assert second_homes(library()) == []


@pytest.mark.parametrize("path, line, expected", [
    ("facelab/data/batches.py", 'CLASSES = "classes.json"', "the prepared folder's class list"),
    ("facelab/evaluation/explain.py", 'MANIFEST = PREPARED / "manifest.csv"', "the prepared folder's manifest"),
    ("facelab/reporting/review.py", 'x = prepared / "images.npy"', "a prepared folder's array file"),
    ("facelab/reporting/document.py", 'h = plots / "history.csv"', "train's history file"),
    ("facelab/reporting/figures.py", 'column = f"val/{metric}"', "a history column or W&B key"),
    ("facelab/reporting/comparison.py", 'column = f"{split}/acc"', "a history column or W&B key"),
    ("facelab/data/split.py", 'ORDER = ("train", "val", "test")', "the split tuple"),
    ("facelab/data/split.py", 'SPLITS = ["train", "val", "test"]', "SPLITS defined again"),
    ("facelab/evaluation/stats.py", 'METRICS = ("acc", "macro_f1")', "METRICS defined again"),
    ("facelab/data/public.py", 'home = "lfw_home"', "LFW's cache folder"),
    ("facelab/data/public.py", 'where = "data.emotion.path"', "the data.<task>.path key"),
    ("stages/run.py", 'KEY = "CUBLAS_WORKSPACE_CONFIG"', "cuBLAS's deterministic workspace"),
    ("facelab/training/health.py", 'BACKEND = "Agg"', "matplotlib's file-only backend"),
])
def test_a_fact_written_again_outside_its_home_is_found(path, line, expected):
    text = (ROOT / path).read_text()  # second_homes reads each file on its own: the planted file is enough
    before = set(second_homes({path: text}))
    found = [f for f in second_homes({path: f"{text}\n{line}\n"}) if f not in before]
    assert len(found) == 1 and found[0].startswith(f"{path}:") and expected in found[0], found
