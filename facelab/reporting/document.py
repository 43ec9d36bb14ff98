"""The comparison report: the experiments (reporting.results) in, the document (blocks; see reporting.render) and its
figures out."""
from __future__ import annotations

import dataclasses
import shutil
from pathlib import Path

import pandas as pd

from facelab import paths
from facelab.evaluation.records import Calibration
from facelab.files import atomic_dir
from facelab.modelcard import STAND_IN
from facelab.names import METRICS, SPLITS, key, selected
from facelab.params import AUGMENT_OFF
from facelab.reporting.comparison import (
    Pair,
    compare_task,
    coverage_text,
    decision_text,
    leaderboard,
    p_text,
    pair_p_text,
    pairwise,
    score_text,
    spread_text,
)
from facelab.reporting.figures import plot_confusion, plot_curves, plot_scores, plot_val_curves, plot_zscore
from facelab.reporting.label_errors import Audit, audit_blocks
from facelab.reporting.render import render_html, render_markdown
from facelab.reporting.results import Experiment, Run

# (anchor suffix, title): what each experiment shows, in this order
SECTIONS = (("log", "Epoch log"), ("summary", "Run summary"),
            ("confusion", "Confusion matrix: counts and z-scores"),
            ("explain", "Mistakes, saliency and calibration"),
            ("health", "Gradient and parameter distributions"),
            ("curves", "Loss and accuracy curves"), ("classes", "Per-class precision, recall and F1"))
AVERAGES = ("macro avg", "weighted avg")


def write_report(experiments: list[Experiment], out_dir: str | Path, zscore_dir: str | Path,
                 audits: dict[str, Audit] | None = None) -> dict[str, list[str]]:
    """Write the report and the z-score plots (each experiment's runs pooled), each folder atomically; return each
    task's comparison. audits: each task's label audit (facelab.reporting.label_errors), where one was run."""
    tasks = dict.fromkeys(e.task for e in experiments)
    pairs = {task: pairwise([e for e in experiments if e.task == task]) for task in tasks}  # once: ASO takes time
    comparisons = {task: compare_task([e for e in experiments if e.task == task], pairs[task]) for task in tasks}
    with atomic_dir(out_dir) as tmp:
        for exp in experiments:
            write_figures(exp, tmp / "figures")
        for task in comparisons:
            write_task_figures([e for e in experiments if e.task == task], tmp / "figures", task)
        for task, audit in (audits or {}).items():
            if audit.gallery.is_file():
                shutil.copyfile(audit.gallery, tmp / "figures" / f"{task}_label_issues.png")
        blocks = document(experiments, comparisons, pairs, audits)
        (tmp / "index.html").write_text(render_html(blocks))
        (tmp / "report.md").write_text(render_markdown(blocks))
    with atomic_dir(zscore_dir) as tmp:
        for exp in experiments:
            plot_zscore(exp.confusion.model_dump(), tmp / exp.task / f"{exp.recipe}.png",
                        f"{exp.name}: confusion z-score")
    return comparisons


def stem(exp: Experiment) -> str:
    return f"{exp.task}_{exp.recipe}"


def write_figures(exp: Experiment, folder: Path) -> None:
    """Every run's curves in one figure, the confusion matrix summed over the runs, the first run's images."""
    plot_curves({run.seed: run.history for run in exp.runs}, folder / f"{stem(exp)}_curves.png")
    plot_confusion(exp.confusion.model_dump(), folder / f"{stem(exp)}_confusion.png")
    for name, source in {**exp.first.images, **exp.first.explained}.items():
        shutil.copyfile(source, folder / f"{stem(exp)}_{name}.png")


def write_task_figures(experiments: list[Experiment], folder: Path, task: str) -> None:
    several = any(len(e.runs) > 1 for e in experiments)
    plot_scores(leaderboard(experiments), folder / f"{task}_scores.png",
                f"{task}: mean test scores, a dot per seed" if several else
                f"{task}: test scores, 95% bootstrap intervals")
    plot_val_curves({e.recipe: [run.history for run in e.runs] for e in experiments}, folder / f"{task}_val_curves.png")


def document(experiments: list[Experiment], comparisons: dict[str, list[str]],
             pairs: dict[str, list[Pair]] | None = None, audits: dict[str, Audit] | None = None) -> list[tuple]:
    """The page: the answer per task first (leaderboard, figures, comparison, label audit), then every experiment
    folded. pairs: each task's pairwise comparisons when already computed; audits: each task's label audit."""
    tasks = list(comparisons)
    blocks = [("heading", 1, f"facelab: {len(experiments)} experiments", "top"), *banners(experiments),
              ("text", computed_text(experiments)), ("links", [(f"#{task}", f"Task: {task}") for task in tasks]
               + [(f"#{stem(e)}", f"{e.task} / {e.recipe}") for e in experiments])]
    for task in tasks:
        runs = [e for e in experiments if e.task == task]
        found = pairs[task] if pairs is not None else pairwise(runs)
        blocks += [("heading", 2, f"Task: {task}", task), ("text", coverage_text(runs)),
                   leaderboard_table(runs, found), ("text", comparisons[task][0]), ("text", decision_text(found)),
                   pairwise_table(found),
                   ("image", f"figures/{task}_scores.png", f"{task} test scores with intervals"),
                   ("image", f"figures/{task}_val_curves.png", f"{task} validation curves"),
                   ("heading", 3, f"{task}: comparison", f"{task}_comparison"), ("list", comparisons[task][1:])]
        if audits is not None:
            audit = audits.get(task)
            blocks += audit_blocks(task, runs, found, audit.record if audit else None,
                                   f"figures/{task}_label_issues.png" if audit and audit.gallery.is_file() else None)
        for exp in runs:
            blocks += experiment_blocks(exp)
    return blocks


def banners(experiments: list[Experiment]) -> list[tuple]:
    """A warning on top for every experiment whose numbers must not be read as they look."""
    stand_ins = [e.name for e in experiments if e.unverified]
    down = [e.name + (f" (seed {', '.join(map(str, e.collapsed_seeds))} of {len(e.runs)})" if len(e.runs) > 1 else "")
            for e in experiments if e.collapsed]
    found = []
    if stand_ins:
        found.append(("banner", f"{', '.join(stand_ins)}: {STAND_IN} (trained from a file that is not "
                                f"torchvision's ImageNet download)."))
    if down:
        found.append(("banner", f"Collapsed (predicts one class, or scores no better than the majority class or "
                                f"chance): {', '.join(down)}. Ranked last; never counted as best (an experiment "
                                f"is collapsed if any of its runs is)."))
    return found


# what a compute record means for repeating a run: said by the report and the pull-request review
SAME_MACHINE = "A seeded run repeats bit-for-bit only on the same processor, kernels, threads and torch"


def computed_text(experiments: list[Experiment]) -> str:
    """Where the runs were computed (their details' compute records), and what that means for repeating them."""
    computes = [run.details.compute if run.details else None for e in experiments for run in e.runs]
    machines = list(dict.fromkeys(compute.text() for compute in computes if compute is not None))
    if not machines:
        return "Where these runs were computed is not recorded (results written before facelab recorded it)."
    unknown = computes.count(None)
    where = "; ".join(machines) + (f"; {unknown} run(s) not recorded" if unknown else "")
    return f"Computed on {where}. {SAME_MACHINE}; on another CPU kind its scores move about as much as another seed's."


def leaderboard_table(experiments: list[Experiment], pairs: list[Pair]) -> tuple:
    """Ranked by the mean test macro F1 over the runs; with several seeds each score is the mean ± sd and every
    seed's value, with one seed the value and its bootstrap interval over the test images."""
    rows, board = [], leaderboard(experiments)
    for row, below in zip(board, board[1:] + [None]):
        exp = row["experiment"]
        flags = [flag for flag, on in (("collapsed", row["collapsed"]), (STAND_IN, row["unverified"])) if on]
        epochs = [f"{best}" + (f" of {of}" if of else "") for best, of in zip(row["best_epochs"], row["epochs"])]
        rows.append([str(row["rank"]), row["recipe"], score_text(exp, "acc"), score_text(exp, "macro_f1"),
                     apart_text(pairs, row, below), ", ".join(epochs), f"{row['train_seconds']:.1f}",
                     "; ".join(flags)])
    several = any(len(e.runs) > 1 for e in experiments)
    shown = "mean ± sd (each seed)" if several else "[95% CI]"
    return ("table", ["rank", "recipe", f"test acc {shown}", f"test macro F1 {shown}",
                      "ahead of the next rank? (macro F1 p, Holm p)",
                      "epoch kept" + (" (each seed)" if several else ""),
                      "training seconds" + (" (mean)" if several else ""), "warnings"], rows)


def apart_text(pairs: list[Pair], row: dict, below: dict | None) -> str:
    """The verdict rule applied to a leaderboard row and the one ranked under it."""
    found = next((p for p in pairs if below and {p.a, p.b} == {row["recipe"], below["recipe"]}), None)
    if found is None:
        return "-"
    return (f"{'yes' if found.significant else 'no, within noise'} (p {pair_p_text(found)}, "
            f"Holm p {pair_p_text(found, holm_adjusted=True)})")


def pairwise_table(pairs: list[Pair]) -> tuple:
    """Every pair over its shared seeds: the macro F1 difference that decides (its interval covers what
    coverage_text says), each seed's paired difference, Almost Stochastic Order beside it, and with one seed
    McNemar's test on accuracy."""
    rows = []
    for p in pairs:
        found = p.over_runs
        per_seed = "; ".join(f"{d:+.3f} [{lo:+.3f}, {hi:+.3f}]"
                             for d, (lo, hi) in zip(found.per_seed, found.per_seed_ci))
        test = (f"{p_text(p.mcnemar['p_value'], None)} ({p.mcnemar['b_only']} / {p.mcnemar['a_only']})" if p.mcnemar
                else "- (one seed only)")
        rows.append([f"{p.b} vs {p.a}", f"{found.diff:+.3f} [{found.ci[0]:+.3f}, {found.ci[1]:+.3f}]",
                     pair_p_text(p), pair_p_text(p, holm_adjusted=True), "yes" if p.significant else "no", per_seed,
                     "-" if p.aso is None else f"{p.aso:.2f} ({p.ahead})", test])
    over = bool(pairs) and pairs[0].over_runs.runs_included
    return ("table", ["pair (lower rank vs higher)",
                      "macro F1 difference [95% CI over seeds and test images]" if over else
                      "macro F1 difference [paired 95% CI, test images only]",
                      "p (t over seeds)" if over else "p (paired bootstrap)", f"p, Holm over {len(pairs)}",
                      "different?", "each seed's paired difference [its 95% CI]",
                      "ASO ε_min (the recipe tested as better)",
                      "accuracy: McNemar p (images only the first / only the second got right)"], rows)


def per_run(exp: Experiment, blocks_of) -> list[tuple]:
    """blocks_of(run) for every run, each under a "seed <seed>:" line when there are several."""
    if len(exp.runs) == 1:
        return blocks_of(exp.first)
    return [block for run in exp.runs for block in (("text", f"seed {run.seed}:"), *blocks_of(run))]


def first_only(exp: Experiment, what: str) -> list[tuple]:
    """Where the other seeds' images are, when only the first seed's are shown."""
    if len(exp.runs) == 1:
        return []
    others = ", ".join(paths.plots(exp.task, exp.recipe, run.seed).as_posix() for run in exp.runs[1:])
    return [("text", f"{what}: seed {exp.first.seed}'s; the other seeds' are in {others}.")]


def experiment_blocks(exp: Experiment) -> list[tuple]:
    """One recipe's subsection, folded: its sections in the order of SECTIONS (each seed's numbers, every seed's
    curves, the confusion summed over the seeds), and where its W&B runs are."""
    caption = f"{stem(exp)} confusion" + (f", summed over seeds {', '.join(map(str, exp.seeds))}"
                                          if len(exp.runs) > 1 else "")
    content = {"log": per_run(exp, lambda run: [log_table(run.history)]),
               "summary": per_run(exp, summary_blocks),
               "confusion": [("image", f"figures/{stem(exp)}_confusion.png", caption)],
               "explain": explain_blocks(exp),
               "health": health_blocks(exp), "curves": curve_blocks(exp), "classes": [class_table(exp)]}
    inner = [*banners([exp]), *per_run(exp, wandb_blocks)]
    for section, title in SECTIONS:
        inner += [("heading", 4, title, f"{stem(exp)}_{section}"), *content[section]]
    return [("heading", 3, f"{exp.task} / {exp.recipe}", stem(exp)),
            ("fold", f"{exp.task} / {exp.recipe}: epoch log, summary, confusion, mistakes, saliency, "
                     f"calibration, health, curves, classes", inner)]


def explain_blocks(exp: Experiment) -> list[tuple]:
    """The mistake gallery, the Grad-CAM figure and the reliability diagram evaluate drew, and the test ECE before
    and after temperature scaling (older results: whatever of these they have)."""
    captions = {"gallery": "mistakes, most confident first", "saliency": "Grad-CAM saliency",
                "reliability": "reliability diagram"}
    images = [("image", f"figures/{stem(exp)}_{name}.png", f"{stem(exp)} {captions[name]}")
              for name in exp.first.explained]
    calibration = per_run(exp, lambda run: [("text", calibration_text(run.details.calibration if run.details
                                                                      else None))])
    return [*calibration, *(first_only(exp, "Images") if images else []), *images]


def calibration_text(calibrated: Calibration | None) -> str:
    if calibrated is None:
        return "Calibration was not recorded for this run."
    test, val, t = calibrated.test, calibrated.val, calibrated.temperature
    scaled = (f"temperature {t:.3f}, fitted on the validation split (val ECE {val.before:.3f} → "
              f"{val.after:.3f})" if t != 1.0 else "no temperature (train.calibrate: none)")
    return (f"Test expected calibration error ({calibrated.bins} bins, 95% bootstrap interval): "
            f"{test.before.ece:.3f} {bracket(test.before.ece_ci)} before temperature scaling, "
            f"{test.after.ece:.3f} {bracket(test.after.ece_ci)} after ({scaled}). "
            f"The probabilities facelab predict gives are the scaled ones; scaling never changes a prediction.")


def bracket(ci) -> str:
    return f"[{ci[0]:.3f}, {ci[1]:.3f}]"


def wandb_blocks(tracked: Run) -> list[tuple]:
    run = tracked.details.wandb if tracked.details else None
    if run is None:
        return [("text", "No W&B run was recorded (wandb.mode: disabled).")]
    if run.url:
        return [("links", [(run.url, f"W&B run {run.id}")])]
    return [("text", f"W&B run {run.id} ({run.mode}): {run.folder} in the repository; upload it with "
                     f"wandb sync {run.folder}")]


def log_table(history: pd.DataFrame) -> tuple:
    rows = [[str(int(row.epoch)), *(f"{row[c]:.4f}" for c in history.columns[1:])] for _, row in history.iterrows()]
    return ("table", list(history.columns), rows)


def summary_blocks(exp: Run) -> list[tuple]:
    """One run: last epoch from the history; the kept model (train.select_by) from the metrics; then time and
    speed."""
    metrics, last = exp.metrics, exp.history.iloc[-1]
    epoch, best = int(last["epoch"]), metrics.best_epoch
    rows = [[f"{split}, last epoch ({epoch})", *(f"{last[key(split, metric)]:.4f}" for metric in ("loss", "acc")), ""]
            for split in ("train", "val")]
    rows += [[f"{split}, kept model (epoch {best})", *(f"{getattr(getattr(metrics, split), k):.4f}" for k in METRICS)]
             for split in SPLITS]
    details = exp.details
    speed = f" ({details.images_per_second:.1f} images/second)" if details and details.images_per_second else ""
    kept = (f" ({details.select_by}: {KEPT_BY[selected(details.select_by)[1]]}).{augment_text(details.augment)}"
            if details else ".")
    return [("table", ["", "loss", "accuracy", "macro F1"], rows),
            ("text", f"Trained {len(exp.history)} epochs in {metrics.train_seconds:.1f} s{speed}; "
                     f"kept epoch {best}{kept}")]


KEPT_BY = {"loss": "lowest validation loss", "macro_f1": "highest validation macro F1, ties to the lower loss"}


def augment_text(augment: dict | None) -> str:
    """What the training images went through, as recorded beside the model (older models: not recorded)."""
    if augment is None:
        return ""
    off = {k: list(v) if isinstance(v, tuple) else v for k, v in dataclasses.asdict(AUGMENT_OFF).items()}
    on = [name for name, value in augment.items() if value != off[name]]
    named = [name if augment[name] is True else f"{name} {augment[name]}" for name in on]
    return f" Augmentation: {', '.join(named) if named else 'none'}."


def health_blocks(exp: Experiment) -> list[tuple]:
    """The gradient health pooled over the runs (a flag if any run raised it), the first run's histograms."""
    images = [("image", f"figures/{stem(exp)}_{name}.png", f"{stem(exp)} {name}") for name in exp.first.images]
    shown = [*(first_only(exp, "Histograms") if images else []), *images]
    health = exp.health
    if health is None:
        return [("text", "Gradient health was not recorded for this run."), *shown]
    span = ", ".join("n/a" if n is None else f"{n:.3g}" for n in (health.min_grad_norm, health.max_grad_norm))
    frozen = health.frozen_layers
    over = " over the seeds" if len(exp.runs) > 1 else ""
    items = [f"gradient norm of trained layers (min, max){over}: {span}",
             f"vanishing gradients: {'yes' if health.vanishing_gradients else 'no'}",
             f"exploding gradients: {'yes' if health.exploding_gradients else 'no'}",
             f"frozen layers ({len(frozen)}): {', '.join(frozen) if frozen else 'none'}"]
    if exp.health_missing:
        items.append(f"not recorded for seed {', '.join(str(r.seed) for r in exp.runs if r.health is None)}")
    return [("list", items), *shown]


def curve_blocks(exp: Experiment) -> list[tuple]:
    gaps = {m: [r.history.iloc[-1][key("train", m)] - r.history.iloc[-1][key("val", m)] for r in exp.runs]
            for m in ("loss", "acc")}
    if len(exp.runs) == 1:
        text = f"accuracy {gaps['acc'][0]:+.4f}, loss {gaps['loss'][0]:+.4f}."
    else:
        text = (f"accuracy {spread_text(gaps['acc'], 4)}, loss {spread_text(gaps['loss'], 4)} (mean ± sd over "
                f"seeds {', '.join(map(str, exp.seeds))}; one line per seed in the figure).")
    return [("image", f"figures/{stem(exp)}_curves.png", f"{stem(exp)} curves"),
            ("text", f"Generalisation gap at the last epoch (train - val): {text}")]


def class_table(exp: Experiment) -> tuple:
    """Per class precision, recall and F1: one run's, or the mean ± sd over the runs with support summed."""
    reports = [run.classes for run in exp.runs]
    names = [*exp.first.confusion.classes, *(a for a in AVERAGES if a in reports[0])]
    rows = [[name, *(spread_text([report[name][k] for report in reports]) for k in ("precision", "recall", "f1-score")),
             f"{sum(report[name]['support'] for report in reports):.0f}"] for name in names]
    several = len(reports) > 1
    return ("table", ["class", *(f"{k}{' (mean ± sd over seeds)' if several else ''}"
                                 for k in ("precision", "recall", "F1")),
                      "support" + (" (all seeds)" if several else "")], rows)
