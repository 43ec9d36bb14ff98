"""dvc.yaml's code deps and params match what each stage really imports and reads: derived from the source, not
trusted."""
from __future__ import annotations

import ast
import copy
from pathlib import Path

import pytest
import yaml

from tests.conftest import ROOT

PACKAGES = ("facelab", "stages")
ITEMS = {"args.task": "${item.task}", "args.recipe": "${item.recipe}"}


def module_file(name: str, root: Path) -> Path | None:
    base = root.joinpath(*name.split("."))
    for candidate in (base.with_suffix(".py"), base / "__init__.py"):
        if candidate.is_file():
            return candidate
    return None


def imports_of(path: Path, root: Path) -> set[Path]:
    """Project files that importing `path` runs: every module it imports (at the top or inside a function),
    and the packages' __init__.py on the way."""
    names = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            names |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names |= {node.module, *(f"{node.module}.{alias.name}" for alias in node.names)}
        elif isinstance(node, ast.ImportFrom):
            raise AssertionError(f"{path}: relative import; the closure walk expects absolute imports")
    files = set()
    for name in names:
        parts = name.split(".")
        if parts[0] in PACKAGES:
            files |= {f for i in range(1, len(parts) + 1) if (f := module_file(".".join(parts[:i]), root))}
    return files


def closure(module: str, root: Path) -> set[str]:
    """Every project file that `python -m module` imports, directly or not, relative to root."""
    start = module_file(module, root)
    assert start is not None, f"no file for module {module} under {root}"
    seen: set[Path] = set()
    todo = [start]
    while todo:
        path = todo.pop()
        if path not in seen:
            seen.add(path)
            todo += imports_of(path, root) - seen
    return {p.relative_to(root).as_posix() for p in seen}


def stage_module(cmd: str) -> str:
    words = cmd.split()
    return words[words.index("-m") + 1]


def params_read(path: Path) -> set[str]:
    """The params keys a stage's code reads from the loaded params object: `params.data[args.task]` is
    data.${item.task}, `params.train.eval_batch_size` is train.eval_batch_size."""
    keys = set()
    parents = {}
    tree = ast.parse(path.read_text())
    for node in ast.walk(tree):
        for child in ast.iter_child_nodes(node):
            parents[child] = node
    for node in ast.walk(tree):
        if isinstance(node, ast.Name) and node.id == "params":
            parts: list[str] = []
            current: ast.expr = node
            while isinstance(parent := parents.get(current), (ast.Attribute, ast.Subscript)):
                if isinstance(parent, ast.Attribute):
                    parts.append(parent.attr)
                elif parent.value is current:
                    parts.append(ITEMS.get(ast.unparse(parent.slice), "*"))
                else:
                    break
                current = parent
            if parts:
                keys.add(".".join(parts))
    return keys


def covered(path: str, deps: list[str]) -> bool:
    return any(path == dep or path.startswith(dep.rstrip("/") + "/") for dep in deps)


def problems(dvc: dict, root: Path) -> list[str]:
    """What dvc.yaml gets wrong: code a stage imports that its deps miss, code deps it never imports, params
    keys its code reads that its params: miss."""
    found = []
    for name, stage in dvc["stages"].items():
        module = stage_module(stage["cmd"])
        needed = closure(module, root)
        stage_file = module_file(module, root)
        assert stage_file is not None, f"no file for module {module} under {root}"
        deps = [d for d in stage["deps"] if d.split("/")[0] in PACKAGES]
        found += [f"{name}: imports {path}, which its deps do not cover" for path in sorted(needed)
                  if not covered(path, deps)]
        for dep in deps:
            files = ([dep] if dep.endswith(".py") else
                     [p.relative_to(root).as_posix() for p in (root / dep).rglob("*.py")])
            found += [f"{name}: dep {dep} holds {f}, which the stage does not import" for f in files
                      if f not in needed]
        declared = [str(p) for p in stage.get("params", [])]
        found += [f"{name}: reads params key {key}, which its params: do not cover"
                  for key in sorted(params_read(root / stage_file.relative_to(root)))
                  if not any(key == d or key.startswith(d + ".") for d in declared)]
    return found


def dvc_yaml() -> dict:
    return yaml.safe_load((ROOT / "dvc.yaml").read_text())


def test_every_stage_declares_exactly_the_code_it_imports_and_the_params_it_reads():
    assert problems(dvc_yaml(), ROOT) == []


@pytest.mark.parametrize("stage, drop, expected", [
    ("report", "facelab/reporting/comparison.py",
     "report: imports facelab/reporting/comparison.py, which its deps do not cover"),
    ("run", "facelab/training", "run: imports facelab/training/"),
    ("run", "facelab/evaluation/saliency.py", "run: imports facelab/evaluation/saliency.py"),
])
def test_a_dvc_yaml_missing_an_imported_module_fails(stage, drop, expected):
    doctored = copy.deepcopy(dvc_yaml())
    doctored["stages"][stage]["deps"].remove(drop)
    assert any(p.startswith(expected) for p in problems(doctored, ROOT)), problems(doctored, ROOT)


def test_a_dvc_yaml_missing_a_params_key_or_declaring_unused_code_fails():
    doctored = copy.deepcopy(dvc_yaml())
    doctored["stages"]["run"]["params"].remove("wandb")
    doctored["stages"]["prepare"]["params"] = ["data_seed"]
    doctored["stages"]["prepare"]["deps"].append("facelab/training")
    found = problems(doctored, ROOT)
    assert "run: reads params key wandb, which its params: do not cover" in found
    assert "prepare: reads params key data.${item.task}, which its params: do not cover" in found
    assert "prepare: dep facelab/training holds facelab/training/loop.py, which the stage does not import" in found


def test_a_run_gets_its_seed_from_the_matrix_not_from_params():
    """A run (train, then score) happens once per seed (matrix `seed: ${seeds}`) and takes it as --seed: it neither
    declares nor reads `seeds`, so adding a seed to params.yaml reruns only the new seed's stages (and the report)."""
    stage = dvc_yaml()["stages"]["run"]
    assert stage["matrix"]["seed"] == "${seeds}"
    assert stage["cmd"].endswith("--seed ${item.seed}")
    assert not [key for key in stage["params"] if key.split(".")[0] in ("seeds", "data_seed")]
    module = ROOT / (stage_module(stage["cmd"]).replace(".", "/") + ".py")
    assert not {key for key in params_read(module) if key.split(".")[0] in ("seeds", "data_seed")}
    assert "seed=True" in module.read_text()  # stage_args(..., seed=True): --seed is required


def test_stages_hold_only_entry_points_that_import_no_other_stage():
    # review.py is the one entry point outside the DAG: it compares two revisions' results for a pull request
    entry_points = ({stage_module(s["cmd"]).split(".")[-1] + ".py" for s in dvc_yaml()["stages"].values()}
                    | {"review.py"})
    assert {p.name for p in (ROOT / "stages").glob("*.py")} - {"__init__.py"} == entry_points
    for name in entry_points:
        imported = {p.relative_to(ROOT).as_posix() for p in imports_of(ROOT / "stages" / name, ROOT)}
        assert imported <= {"stages/__init__.py"} | {p for p in imported if p.startswith("facelab/")}, name


def test_the_library_never_imports_a_stage_nor_reads_params_yaml_itself():
    for path in (ROOT / "facelab").rglob("*.py"):
        imported = {p.relative_to(ROOT).as_posix() for p in imports_of(path, ROOT)}
        assert not any(p.startswith("stages/") for p in imported), path
        if path.relative_to(ROOT).as_posix() != "facelab/params/loader.py":
            assert "load_params(" not in path.read_text(), path


def test_no_import_cycle_between_library_modules():
    modules = {p: imports_of(p, ROOT) for p in (ROOT / "facelab").rglob("*.py")}
    state: dict[Path, str] = {}

    def visit(path: Path, stack: list[Path]) -> None:
        state[path] = "open"
        for dep in modules.get(path, ()):
            if dep.name == "__init__.py" and path.is_relative_to(dep.parent):
                continue  # a package's own __init__ runs before its modules, not through an import of theirs
            if state.get(dep) == "open":
                cycle = stack[stack.index(dep):] + [dep] if dep in stack else [path, dep]
                raise AssertionError("import cycle: " + " -> ".join(p.relative_to(ROOT).as_posix() for p in cycle))
            if dep not in state:
                visit(dep, stack + [dep])
        state[path] = "done"

    for path in modules:
        if path not in state:
            visit(path, [path])


# Layers, lowest first. evaluation sits below training: the training loop scores its validation split with the same
# forward pass and statistics the evaluate stage uses. The shared modules (facelab/*.py, params) sit below all.
LAYERS = ("facelab/data", "facelab/evaluation", "facelab/training", "facelab/reporting", "facelab/commands")


def layer(path: str) -> int | None:
    if path in ("facelab/app.py", "facelab/__main__.py"):  # the `facelab` command's entry points
        return LAYERS.index("facelab/commands")
    return next((i for i, name in enumerate(LAYERS) if path.startswith(name + "/")), None)


def test_layers_point_one_way():
    upward = []
    for path in (ROOT / "facelab").rglob("*.py"):
        here = layer(path.relative_to(ROOT).as_posix())
        for dep in imports_of(path, ROOT):
            there = layer(dep.relative_to(ROOT).as_posix())
            if there is not None and (here is None or there > here):
                upward.append(f"{path.relative_to(ROOT)} imports {dep.relative_to(ROOT)}")
    assert upward == []
