"""`facelab seeds`: the queued seed experiments' metrics (`dvc exp show --json`), as mean ± std per experiment and
configuration."""
from __future__ import annotations

import argparse
import json
import math
import statistics
import subprocess
import sys
from pathlib import Path

from facelab import paths
from facelab.errors import UserError
from facelab.names import LABEL_METRICS
from facelab.params import RECIPES, TASKS

# The experiment each metrics file belongs to, by the path paths.evaluate_outputs gives it.
METRICS_FILES = {paths.evaluate_outputs(task, recipe)["metrics"].as_posix(): f"{task}/{recipe}"
                 for task in TASKS for recipe in RECIPES}


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--json", type=Path, dest="shown",
                        help="a saved `dvc exp show --json` (default: run it in the current repository)")


def execute(args: argparse.Namespace) -> None:
    runs, warnings = distinct_runs(runs_of(read_shown(args.shown)))
    for warning in warnings:
        print(f"warning: {warning}", file=sys.stderr)
    print("\n".join(markdown(summarise(runs))))


def read_shown(path: Path | None) -> list:
    if path is not None:
        try:
            return json.loads(path.read_text())
        except (OSError, json.JSONDecodeError) as error:
            raise UserError(f"{path}: not a readable `dvc exp show --json` output ({error})") from error
    done = subprocess.run(["dvc", "exp", "show", "--json"], capture_output=True, text=True)
    if done.returncode != 0:
        raise UserError(f"`dvc exp show --json` failed: {done.stderr.strip()[-500:]}; run it in the repository root")
    return json.loads(done.stdout)


def runs_of(shown: list) -> list[dict]:
    """Every committed baseline and every finished experiment under it: name, params (params.yaml) and
    test scores per metrics/<task>/<recipe>.json. The uncommitted workspace and failed or queued rows are left out."""
    runs = []
    for row in shown:
        if row.get("rev") == "workspace":
            continue
        candidates = [(row.get("name") or row["rev"][:7], row.get("data"))]
        for experiment in row.get("experiments") or []:
            for rev in experiment.get("revs") or []:
                candidates.append((experiment.get("name") or rev.get("name") or rev["rev"][:7], rev.get("data")))
        runs += [run for name, data in candidates if (run := one_run(name, data)) is not None]
    return runs


def one_run(name: str, data: dict | None) -> dict | None:
    if not data or data.get("status") in ("Queued", "Running", "Failed"):
        return None
    params = ((data.get("params") or {}).get("params.yaml") or {}).get("data")
    scores = {}
    for path, metrics in (data.get("metrics") or {}).items():
        test = ((metrics or {}).get("data") or {}).get("test")
        if path in METRICS_FILES and isinstance(test, dict) and all(key in test for key in LABEL_METRICS):
            scores[METRICS_FILES[path]] = {key: test[key] for key in LABEL_METRICS} | {
                "collapsed": bool(metrics["data"].get("collapsed"))}
    if params is None or not scores:
        return None
    return {"name": name, "seed": params.get("seed"), "params": params, "scores": scores}


def distinct_runs(runs: list[dict]) -> tuple[list[dict], list[str]]:
    """Each experiment once (`dvc exp show` can list one under several revisions), and one run per seed and params:
    an experiment that only re-ran prepare has its baseline's seed, params and scores, and counting both would
    show a spread of 0 over two 'seeds'. The warnings name the runs counted once."""
    by_name: dict[str, dict] = {}     # run name: its first run
    by_setting: dict[str, dict] = {}  # params as JSON: the run counted for them
    warnings: list[str] = []
    for run in runs:
        by_name.setdefault(run["name"], run)
    for run in by_name.values():
        key = json.dumps(run["params"], sort_keys=True)
        if key in by_setting:
            first = by_setting[key]
            warnings.append(f"runs {first['name']} and {run['name']} have the same seed ({run['seed']}) and params; "
                            f"counted once, as {first['name']} "
                            f"(queue other seeds with `dvc exp run --queue -S seed=...`)")
            continue
        by_setting[key] = run
    return list(by_setting.values()), warnings


def summarise(runs: list[dict]) -> list[dict]:
    """Runs grouped by their params with the seed left out (one group per configuration), and the W&B settings
    (they say where a run is logged, not what is trained); per group and experiment: the seeds, mean and sample
    std of test acc and macro F1, and how many runs collapsed."""
    groups: dict[str, list[dict]] = {}
    for run in runs:
        key = json.dumps({k: v for k, v in run["params"].items() if k not in ("seed", "wandb")}, sort_keys=True)
        groups.setdefault(key, []).append(run)
    base = json.loads(next(iter(groups))) if groups else {}
    rows = []
    for key, members in groups.items():
        label = ", ".join(f"{k}={v}" for k, v in differences(base, json.loads(key))) or "baseline params"
        experiments = sorted({name for run in members for name in run["scores"]})
        for experiment in experiments:
            scored = [run for run in members if experiment in run["scores"]]
            row = {"config": label, "experiment": experiment, "seeds": [run["seed"] for run in scored],
                   "runs": [run["name"] for run in scored],
                   "collapsed": sum(run["scores"][experiment]["collapsed"] for run in scored)}
            for score in LABEL_METRICS:
                values = [run["scores"][experiment][score] for run in scored]
                row[score] = (statistics.mean(values), statistics.stdev(values) if len(values) > 1 else math.nan)
            rows.append(row)
    return rows


def differences(base, other, prefix: str = "") -> list[tuple[str, object]]:
    """Dotted keys whose values differ between two params mappings."""
    if isinstance(base, dict) and isinstance(other, dict):
        found = []
        for key in sorted(set(base) | set(other)):
            found += differences(base.get(key), other.get(key), f"{prefix}{key}.")
        return found
    return [] if base == other else [(prefix.rstrip("."), other)]


def markdown(rows: list[dict]) -> list[str]:
    if not rows:
        return ["no finished experiments with test metrics in `dvc exp show`; queue some with "
                "`dvc exp run --queue -S seed=1,2,3` and run `dvc queue start`"]
    lines = ["| params (besides seed) | experiment | runs | seeds | test acc, mean ± std "
             "| test macro F1, mean ± std | collapsed |",
             "|---|---|---|---|---|---|---|"]
    for row in rows:
        cells = [f"{mean:.3f} ± {std:.3f}" if not math.isnan(std) else f"{mean:.3f} (one run: no spread)"
                 for mean, std in (row["acc"], row["macro_f1"])]
        lines.append(f"| {row['config']} | {row['experiment']} | {len(row['runs'])} | "
                     f"{', '.join(str(s) for s in row['seeds'])} | {cells[0]} | {cells[1]} | "
                     f"{row['collapsed']} of {len(row['runs'])} |")
    lines.append("")
    lines.append("std: sample standard deviation over the runs (seeds). Two configurations differ by more than "
                 "seed noise only when their means are further apart than about two of these stds.")
    return lines
