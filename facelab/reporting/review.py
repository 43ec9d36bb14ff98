"""Pull-request review: the experiments of a base revision against the workspace, as a comment (Markdown) with a
verdict per changed experiment, decided over every seed both revisions have with the report's statistics
(reporting.comparison.paired: a change that moves one seed and not the others is not significant), and base/head
figures side by side."""
from __future__ import annotations

import io
import json
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from facelab import paths
from facelab.data.batches import prepared_split, split_files
from facelab.errors import UserError
from facelab.evaluation.gallery import discordant_strip
from facelab.evaluation.records import Confusion, Metrics, TestScores
from facelab.files import atomic_dir
from facelab.modelcard import STAND_IN, Compute
from facelab.names import key
from facelab.params import RECIPES, TASKS, Split
from facelab.plotting import pyplot, save
from facelab.reporting.comparison import detectable_text, difference_text, paired, scope_text, spread_text
from facelab.reporting.document import SAME_MACHINE
from facelab.reporting.figures import CURVE_METRICS, heatmap
from facelab.reporting.results import Experiment, Run
from facelab.yaml12 import load_yaml

HEADLINE = ("test.acc", "test.macro_f1", "collapsed", "weights_verified")  # the metrics-diff rows a reviewer reads
WATERMARK = "<!-- facelab review -->"  # marks the one comment the workflow keeps updating


@dataclass
class Side:
    """One run (seed) of an experiment at one revision, from the files committed to git (metrics/ and plots/ are
    cache: false)."""
    seed: int
    metrics: Metrics
    history: pd.DataFrame
    predictions: pd.DataFrame
    confusion: Confusion
    compute: Compute | None = None  # where it was trained (its details file; None: not recorded at that revision)


def git_text(rev: str, path: str, cwd: Path) -> str | None:
    """A file's text at a git revision; None when it does not exist there."""
    result = subprocess.run(["git", "show", f"{rev}:{path}"], cwd=cwd, capture_output=True, text=True)
    return result.stdout if result.returncode == 0 else None


def workspace_text(path: str, cwd: Path) -> str | None:
    file = cwd / path
    return file.read_text() if file.is_file() else None


def load_side(read, task: str, recipe: str, seed: int) -> Side | None:
    """One run's committed results through `read(path) -> text | None`; None if any is missing."""
    scored = paths.evaluate_outputs(task, recipe, seed)
    files = {key: path.as_posix() for key, path in (("metrics", scored["metrics"]),
                                                    ("history", paths.history(task, recipe, seed)),
                                                    ("predictions", scored["predictions"]),
                                                    ("confusion", scored["confusion"]))}
    texts = {key: read(path) for key, path in files.items()}
    if any(text is None for text in texts.values()):
        return None
    details = read(scored["details"].as_posix())  # only its compute record: older revisions' details differ
    raw = load_yaml(details, scored["details"].as_posix())[0] if details else None
    computed = raw.get("compute") if isinstance(raw, dict) else None
    return Side(seed=seed, metrics=Metrics.model_validate(load_yaml(texts["metrics"], files["metrics"])[0]),
                history=pd.read_csv(io.StringIO(texts["history"])),
                predictions=pd.read_csv(io.StringIO(texts["predictions"])),
                confusion=Confusion.model_validate(load_yaml(texts["confusion"], files["confusion"])[0]),
                compute=Compute.model_validate(computed) if computed else None)


def revision_settings(params_text: str | None, task: str) -> tuple[list[int], object]:
    """A revision's params.yaml, read raw (an older revision may not fit today's schema): its seeds and
    data.<task>.split. A revision from before seeds has none: there is no run the two revisions share."""
    raw = load_yaml(params_text, "params.yaml")[0] if params_text else None
    if not isinstance(raw, dict):
        return [], None
    seeds = raw.get("seeds")
    split = ((raw.get("data") or {}).get(task) or {}).get("split")
    return ([int(s) for s in seeds] if isinstance(seeds, list) else []), split


def prepared_hash(lock_text: str | None, task: str) -> str | None:
    """The prepared data's hash that dvc.lock records for prepare@<task>: equal hashes, identical test split."""
    if not lock_text:
        return None
    lock = load_yaml(lock_text, "dvc.lock")[0]
    stage = (lock if isinstance(lock, dict) else {}).get("stages", {}).get(f"prepare@{task}", {})
    folder = paths.prepared(task).as_posix()
    return next((out.get("md5") for out in stage.get("outs", []) if out.get("path") == folder), None)


def changed(base: Side, head: Side) -> bool:
    return (base.metrics != head.metrics or not base.predictions.equals(head.predictions)
            or not base.history.equals(head.history))


def verdict(task: str, recipe: str, bases: list[Side], heads: list[Side], same_split: bool) -> str:
    """One line: macro F1 base -> head over the seeds both revisions have (bases and heads in the same seed
    order), by how much, and whether more than noise, decided as the report decides (comparison.paired)."""
    old = [side.metrics.test.macro_f1 for side in bases]
    new = [side.metrics.test.macro_f1 for side in heads]
    seeds = [side.seed for side in heads]
    runs = f" ({len(seeds)} seeds both revisions have: {', '.join(map(str, seeds))})" if len(seeds) > 1 else ""
    lead = f"**{recipe} on {task}**{runs}: macro F1 {spread_text(old)} → {spread_text(new)}"
    # the report's comparison over runs, base as a and head as b; None when the listed test images differ
    test = paired(as_experiment(bases, task, "base"), as_experiment(heads, task, "head")) if same_split else None
    if test is None:
        if len(seeds) > 1:
            moved = ", ".join(f"{o:.3f} → {n:.3f}" for o, n in zip(old, new))
            return (f"{lead} ({sum(new) / len(new) - sum(old) / len(old):+.3f}); the test split differs between the "
                    f"revisions, so no paired test (per seed: {moved}).")
        before, after = bases[0].metrics.test, heads[0].metrics.test
        return (f"{lead} ({new[0] - old[0]:+.3f}); the test split differs between the revisions, so no "
                f"paired test: intervals {interval(before)} → {interval(after)}{overlap_note(before, after)}.")
    scope = f" {scope_text(test)}" if len(seeds) > 1 else ""
    return (f"{lead}, {difference_text(test)}{scope}: "
            f"{'significant' if test.significant else 'not significant; ' + detectable_text(test)}.")


def interval(test: TestScores) -> str:
    lo, hi = test.macro_f1_ci or (float("nan"), float("nan"))
    return f"[{lo:.3f}, {hi:.3f}]"


def overlap_note(old: TestScores, new: TestScores) -> str:
    if old.macro_f1_ci is None or new.macro_f1_ci is None:
        return ""
    apart = old.macro_f1_ci[1] < new.macro_f1_ci[0] or new.macro_f1_ci[1] < old.macro_f1_ci[0]
    return " (the intervals do not overlap)" if apart else " (the intervals overlap: not a clear change)"


def as_experiment(sides: list[Side], task: str, name: str) -> Experiment:
    """A revision's runs as the report's experiment record (reporting.comparison.paired reads their predictions),
    named after the revision; the committed files hold no details or per-class report for it."""
    return Experiment(task=task, recipe=name, runs=[
        Run(seed=side.seed, metrics=side.metrics, details=None, classes={}, history=side.history,
            confusion=side.confusion, predictions=side.predictions) for side in sides])


def warnings_for(task: str, recipe: str, metrics: Metrics) -> list[str]:
    found = []
    if metrics.collapsed:
        found.append(f"⚠️ {task}/{recipe} collapsed: it predicts one class, or scores no better than the majority "
                     f"class or chance.")
    if metrics.weights_verified is False:
        found.append(f"⚠️ {task}/{recipe}: {STAND_IN}.")
    return found


def machine_warnings(found: list[tuple[Side, Side]]) -> list[str]:
    """Why part of a change may be the machine's, not the code's: the base's and the head's runs of one seed were
    computed on another processor, kernel set, thread count or torch (their details' compute records differ), or
    the base does not say where. torch picks its float kernels by processor, so a seeded run repeats bit-for-bit
    only where all of these are equal."""
    found_lines = []
    for base, head in found:
        old, new = base.compute, head.compute
        if old == new:
            continue
        if old is None or new is None:
            side = "base's" if old is None else "workspace's"
            found_lines.append(f"⚠️ The {side} results do not say where they were computed (written before facelab "
                               f"recorded it), so part of any change may be the machine's. {SAME_MACHINE}.")
        else:
            found_lines.append(f"⚠️ Computed elsewhere: the base's runs on {old.text()}, the workspace's on "
                               f"{new.text()}. {SAME_MACHINE}, so part of each change is the machine's, not the "
                               f"code's; to compare code alone, rerun the base on the workspace's machine "
                               f"(`git checkout <base> && dvc repro`).")
    return list(dict.fromkeys(found_lines))


def side_by_side(bases: list[Side], heads: list[Side], title: str, path: Path) -> None:
    """Base (left) and head (right): loss curves and accuracy curves (a line per seed), the z-score confusion
    matrix of the seeds' counts summed. Small PNG."""
    fig, axes = pyplot().subplots(3, 2, figsize=(8, 8.4))
    for column, (sides, name) in enumerate(((bases, "base"), (heads, "head"))):
        for row, (metric, label) in enumerate(CURVE_METRICS):
            ax = axes[row, column]
            for i, side in enumerate(sides):
                ax.plot(side.history["epoch"], side.history[key("train", metric)], "o-", markersize=3, color="C0",
                        alpha=0.7, label="train" if i == 0 else None)
                ax.plot(side.history["epoch"], side.history[key("val", metric)], "s-", markersize=3, color="C1",
                        alpha=0.7, label="val" if i == 0 else None)
            ax.set_title(f"{name}: {label}" + (f" ({len(sides)} seeds)" if len(sides) > 1 else ""), fontsize=9)
            ax.legend(fontsize=7)
            ax.grid(alpha=0.3)
        pooled = as_experiment(sides, "", name).confusion
        heatmap(axes[2, column], np.asarray(pooled.zscore, dtype=float), pooled.classes, zscore=True)
        axes[2, column].set_title(f"{name}: confusion (z-score)", fontsize=9)
    fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    save(fig, path)


def discordant_lines(task: str, recipe: str, base: Side, head: Side, same_split: bool, root: Path,
                     out_dir: Path, split: Split) -> list[str]:
    """The comment's strip of the test images of one seed (the first both revisions have) that only one side gets
    right (McNemar's discordant pairs), or why there is none. The pixels come from the workspace's
    data/prepared/<task>, split by that seed and `split` (the workspace's data.<task>.split): dvc.lock gives the
    prepared folder the same hash and params.yaml the same split at both revisions exactly when the paired test runs, so
    those are the images both sides were scored on."""
    if not same_split:
        return ["No strip of discordant images: the test split differs between the revisions (dvc.lock's "
                f"prepared hash for {task} changed), so no image was scored by both."]
    prepared = paths.prepared(task, root)
    if not paths.prepared_images(prepared).is_file():
        return [f"No strip of discordant images: {prepared.relative_to(root).as_posix()} is not in the workspace "
                f"(`dvc pull` or `dvc repro prepare@{task}` puts it there)."]
    classes = list(head.confusion.classes)
    index = {name: k for k, name in enumerate(classes)}
    rows = prepared_split(prepared, head.seed, split)["test"]
    names = split_files(prepared, {"test": rows})["test"]
    actual = head.predictions["actual"].map(index).to_numpy()
    if len(names) != len(actual):
        return [f"No strip of discordant images: {prepared.relative_to(root).as_posix()} holds {len(names)} test "
                f"images but the predictions {len(actual)}; rerun `dvc repro` so both come from the same split."]
    image = f"{task}_{recipe}_discordant.png"
    pixels = np.load(paths.prepared_images(prepared), mmap_mode="r")[rows]
    counts = discordant_strip(pixels, actual, base.predictions["predicted"].map(index),
                              head.predictions["predicted"].map(index), names, classes, out_dir / image)
    return [f"Test images of seed {head.seed} only one side gets right (McNemar's discordant pairs: "
            f"{counts['head_only']} only head, {counts['base_only']} only base; up to 8 of each shown), from the "
            f"workspace's "
            f"{prepared.relative_to(root).as_posix()}, whose hash dvc.lock records for both revisions:", "",
            f"![{task}/{recipe}: discordant test images]({image})"]


def metrics_table(diff: dict, base_rev: str) -> list[str]:
    """`dvc metrics diff --json` as a Markdown table of the headline metrics only."""
    rows = [(path, field, change) for path, metrics in sorted(diff.items()) for field, change in metrics.items()
            if field in HEADLINE]
    if not rows:
        return ["No headline metric changed."]
    lines = [f"| Path | Metric | {base_rev} | workspace | Change |", "|---|---|---|---|---|"]
    for path, field, change in rows:
        lines.append(f"| {path} | {field} | {number(change.get('old'))} | {number(change.get('new'))} | "
                     f"{number(change.get('diff'))} |")
    return lines


def number(value) -> str:
    if isinstance(value, bool) or value is None:
        return "-" if value is None else str(value).lower()
    return f"{value:.4f}" if isinstance(value, float) else str(value)


def write_review(base_rev: str, root: Path, out_dir: Path, experiments: list[tuple[str, str]], diff: dict,
                 splits: dict[str, Split]) -> str:
    """Write out_dir/comment.md and the base/head images it links (relative to out_dir); return the comment.
    splits: the workspace's data.<task>.split of each task."""
    base_lock, head_lock = git_text(base_rev, "dvc.lock", root), workspace_text("dvc.lock", root)
    base_params, head_params = git_text(base_rev, "params.yaml", root), workspace_text("params.yaml", root)
    shared = shared_seeds(base_params, head_params)
    lines = [WATERMARK, f"## facelab review: workspace vs `{base_rev}`", "", seeds_line(shared), "",
             "### Headline metrics", "", *metrics_table(diff, base_rev), "", "### Experiments", ""]
    unchanged, figures, warnings = [], [], []
    for task, recipe in experiments:
        found = [(base, head) for seed in shared
                 if (base := load_side(lambda path: git_text(base_rev, path, root), task, recipe, seed)) is not None
                 and (head := load_side(lambda path: workspace_text(path, root), task, recipe, seed)) is not None]
        heads = [head for _, head in found]
        for head in heads:
            warnings += [w for w in warnings_for(task, recipe, head.metrics) if w not in warnings]
        warnings += [w for w in machine_warnings(found) if w not in warnings]
        if not found:
            lines.append(f"- **{recipe} on {task}**: no seed with results at both revisions.")
            continue
        bases = [base for base, _ in found]
        if not any(changed(base, head) for base, head in found):
            unchanged.append(f"{task}/{recipe}")
            continue
        base_hash = prepared_hash(base_lock, task)
        same = (base_hash is not None and base_hash == prepared_hash(head_lock, task)
                and revision_settings(base_params, task)[1] == revision_settings(head_params, task)[1])
        lines.append(f"- {verdict(task, recipe, bases, heads, same)}")
        image = f"{task}_{recipe}.png"
        side_by_side(bases, heads, f"{task}/{recipe}: base {base_rev} (left) vs head (right)", out_dir / image)
        figures += [f"#### {task}/{recipe}", "", f"![{task}/{recipe}: base vs head]({image})", "",
                    *discordant_lines(task, recipe, bases[0], heads[0], same, root, out_dir, splits[task]), ""]
    if unchanged:
        lines.append(f"- unchanged: {', '.join(unchanged)}.")
    lines += ["", *(f"> {w}" for w in warnings), ""]
    if figures:
        lines += ["### Base (left) and head (right)", "", *figures]
    comment = "\n".join(lines).rstrip() + "\n"
    (out_dir / "comment.md").write_text(comment)
    return comment


def shared_seeds(base_params: str | None, head_params: str | None) -> list[int]:
    """The seeds both revisions' params.yaml list, in the workspace's order."""
    base = set(revision_settings(base_params, "")[0])
    return [seed for seed in revision_settings(head_params, "")[0] if seed in base]


def seeds_line(shared: list[int]) -> str:
    """How many training runs the verdicts rest on."""
    if not shared:
        return "No seed is listed in both revisions' params.yaml: no run to compare."
    if len(shared) == 1:
        return (f"Compared on 1 seed both revisions have ({shared[0]}): test images only, run-to-run variation is "
                f"not included.")
    return (f"Compared over {len(shared)} seeds both revisions have ({', '.join(map(str, shared))}): each verdict "
            f"is decided on the interval over the seeds and their test images, so a change on one seed alone is not "
            f"called significant.")


def run_review(base: str, out: Path, splits: dict[str, Split], root: Path = Path(".")) -> str:
    """The review of the workspace against git revision `base`, written atomically to `out`; returns the comment.
    splits: the workspace's data.<task>.split of each task (params.yaml, read by the stage)."""
    if subprocess.run(["git", "rev-parse", "--verify", "-q", f"{base}^{{commit}}"], cwd=root,
                      capture_output=True).returncode:
        raise UserError(f"--base {base}: not a git revision here; fetch it first (git fetch origin) or name "
                        f"another (e.g. HEAD~1)")
    diff = metrics_diff(base, root)
    with atomic_dir(out) as tmp:
        return write_review(base, root, tmp, [(t, r) for t in TASKS for r in RECIPES], diff, splits)


def metrics_diff(base: str, root: Path) -> dict:
    """`dvc metrics diff <base> --json`: {path: {key: {old, new, diff}}} for every metric that changed."""
    dvc = shutil.which("dvc") or "dvc"
    result = subprocess.run([dvc, "metrics", "diff", base, "--json"], cwd=root, capture_output=True, text=True)
    if result.returncode:
        raise UserError(f"dvc metrics diff {base} failed: {result.stderr.strip()[-500:]}")
    return json.loads(result.stdout or "{}")
