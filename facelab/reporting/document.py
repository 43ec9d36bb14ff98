"""The comparison report: the experiments (reporting.results) in, the document (blocks; see reporting.render) and its
figures out."""
from __future__ import annotations

import dataclasses
import shutil
from pathlib import Path

import pandas as pd

from facelab.evaluation.records import Calibration, TestScores
from facelab.evaluation.stats import RANKED_BY
from facelab.files import atomic_dir
from facelab.modelcard import STAND_IN
from facelab.names import METRICS, SPLITS, key, selected
from facelab.params import AUGMENT_OFF
from facelab.reporting.comparison import compare_task, decision_text, leaderboard, p_text, pairwise
from facelab.reporting.figures import plot_confusion, plot_curves, plot_scores, plot_val_curves, plot_zscore
from facelab.reporting.render import render_html, render_markdown
from facelab.reporting.results import Experiment

# (anchor suffix, title): what each experiment shows, in this order
SECTIONS = (("log", "Epoch log"), ("summary", "Run summary"),
            ("confusion", "Confusion matrix: counts and z-scores"),
            ("explain", "Mistakes, saliency and calibration"),
            ("health", "Gradient and parameter distributions"),
            ("curves", "Loss and accuracy curves"), ("classes", "Per-class precision, recall and F1"))
AVERAGES = ("macro avg", "weighted avg")


def write_report(experiments: list[Experiment], out_dir: str | Path, zscore_dir: str | Path) -> dict[str, list[str]]:
    """Write the report and the z-score plots, each folder atomically; return each task's comparison."""
    comparisons = {task: compare_task([e for e in experiments if e.task == task])
                   for task in dict.fromkeys(e.task for e in experiments)}
    with atomic_dir(out_dir) as tmp:
        for exp in experiments:
            write_figures(exp, tmp / "figures")
        for task in comparisons:
            write_task_figures([e for e in experiments if e.task == task], tmp / "figures", task)
        blocks = document(experiments, comparisons)
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
    plot_curves(exp.history, folder / f"{stem(exp)}_curves.png")
    plot_confusion(exp.confusion.model_dump(), folder / f"{stem(exp)}_confusion.png")
    for name, source in {**exp.images, **exp.explained}.items():
        shutil.copyfile(source, folder / f"{stem(exp)}_{name}.png")


def write_task_figures(experiments: list[Experiment], folder: Path, task: str) -> None:
    plot_scores(leaderboard(experiments), folder / f"{task}_scores.png",
                f"{task}: test scores, 95% bootstrap intervals")
    plot_val_curves({e.recipe: e.history for e in experiments}, folder / f"{task}_val_curves.png")


def document(experiments: list[Experiment], comparisons: dict[str, list[str]]) -> list[tuple]:
    """The page: the answer per task first (leaderboard, figures, comparison), then every experiment folded."""
    tasks = list(comparisons)
    blocks = [("heading", 1, f"facelab: {len(experiments)} experiments", "top"), *banners(experiments),
              ("links", [(f"#{task}", f"Task: {task}") for task in tasks]
               + [(f"#{stem(e)}", f"{e.task} / {e.recipe}") for e in experiments])]
    for task in tasks:
        runs = [e for e in experiments if e.task == task]
        pairs = pairwise(runs)
        blocks += [("heading", 2, f"Task: {task}", task), leaderboard_table(runs, pairs),
                   ("text", comparisons[task][0]), ("text", decision_text(pairs)), pairwise_table(pairs),
                   ("image", f"figures/{task}_scores.png", f"{task} test scores with intervals"),
                   ("image", f"figures/{task}_val_curves.png", f"{task} validation curves"),
                   ("heading", 3, f"{task}: comparison", f"{task}_comparison"), ("list", comparisons[task][1:])]
        for exp in runs:
            blocks += experiment_blocks(exp)
    return blocks


def banners(experiments: list[Experiment]) -> list[tuple]:
    """A warning on top for every experiment whose numbers must not be read as they look."""
    stand_ins = [e.name for e in experiments if e.metrics.weights_verified is False]
    down = [e.name for e in experiments if e.metrics.collapsed]
    found = []
    if stand_ins:
        found.append(("banner", f"{', '.join(stand_ins)}: {STAND_IN} (trained from a file that is not "
                                f"torchvision's ImageNet download)."))
    if down:
        found.append(("banner", f"Collapsed (predicts one class, or scores no better than the majority class or "
                                f"chance): {', '.join(down)}. Ranked last; never counted as best."))
    return found


def leaderboard_table(experiments: list[Experiment], pairs: list[dict]) -> tuple:
    rows, board = [], leaderboard(experiments)
    for row, below in zip(board, board[1:] + [None]):
        test = row["test"]
        flags = [flag for flag, on in (("collapsed", row["collapsed"]), (STAND_IN, row["unverified"])) if on]
        rows.append([str(row["rank"]), row["recipe"], interval(test, "acc"), interval(test, "macro_f1"),
                     apart_text(pairs, row, below),
                     f"{row['best_epoch']}" + (f" of {row['epochs']}" if row.get("epochs") else ""),
                     f"{row['train_seconds']:.1f}", "; ".join(flags)])
    return ("table", ["rank", "recipe", "test acc [95% CI]", "test macro F1 [95% CI]",
                      "ahead of the next rank? (paired macro F1 p, Holm p)", "epochs to best", "training seconds",
                      "warnings"], rows)


def apart_text(pairs: list[dict], row: dict, below: dict | None) -> str:
    """The verdict rule applied to a leaderboard row and the one ranked under it."""
    found = next((p for p in pairs if below and {p["a"], p["b"]} == {row["recipe"], below["recipe"]}), None)
    if found is None:
        return "-"
    return (f"{'yes' if found['significant'] else 'no, within noise'} (p {p_text(found[RANKED_BY]['p_value'])}, "
            f"Holm p {p_text(found['p_holm'])})")


def interval(test: TestScores, metric: str) -> str:
    """A test score and its interval: metric is "acc" or "macro_f1" (each has a <metric>_ci beside it)."""
    lo, hi = getattr(test, f"{metric}_ci") or (float("nan"), float("nan"))
    return f"{getattr(test, metric):.3f} [{lo:.3f}, {hi:.3f}]"


def pairwise_table(pairs: list[dict]) -> tuple:
    """Every pair on the same test images: the macro F1 difference that decides, and McNemar's test on accuracy."""
    rows = [[f"{p['b']} vs {p['a']}", f"{p[RANKED_BY]['diff']:+.3f} [{p[RANKED_BY]['ci'][0]:+.3f}, "
             f"{p[RANKED_BY]['ci'][1]:+.3f}]", p_text(p[RANKED_BY]['p_value']), p_text(p['p_holm']),
             "yes" if p["significant"] else "no", str(p[RANKED_BY]["images_needed"] or "-"),
             f"{p['mcnemar']['p_value']:.2g} ({p['mcnemar']['b_only']} / {p['mcnemar']['a_only']})"] for p in pairs]
    return ("table", ["pair (lower rank vs higher)", "macro F1 difference [paired 95% CI]", "p (paired bootstrap)",
                      f"p, Holm over {len(pairs)}", "different?", "test images to tell macro F1 apart",
                      "accuracy: McNemar p (images only the first / only the second got right)"], rows)


def experiment_blocks(exp: Experiment) -> list[tuple]:
    """One recipe's subsection, folded: its sections in the order of SECTIONS, and where its W&B run is."""
    content = {"log": [log_table(exp.history)], "summary": summary_blocks(exp),
               "confusion": [("image", f"figures/{stem(exp)}_confusion.png", f"{stem(exp)} confusion")],
               "explain": explain_blocks(exp),
               "health": health_blocks(exp), "curves": curve_blocks(exp), "classes": [class_table(exp)]}
    inner = [*banners([exp]), *wandb_blocks(exp)]
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
              for name in exp.explained]
    return [("text", calibration_text(exp.details.calibration if exp.details else None)), *images]


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


def wandb_blocks(exp: Experiment) -> list[tuple]:
    run = exp.details.wandb if exp.details else None
    if run is None:
        return [("text", "No W&B run was recorded (wandb.mode: disabled).")]
    if run.url:
        return [("links", [(run.url, f"W&B run {run.id}")])]
    return [("text", f"W&B run {run.id} ({run.mode}): {run.folder} in the repository; upload it with "
                     f"wandb sync {run.folder}")]


def log_table(history: pd.DataFrame) -> tuple:
    rows = [[str(int(row.epoch)), *(f"{row[c]:.4f}" for c in history.columns[1:])] for _, row in history.iterrows()]
    return ("table", list(history.columns), rows)


def summary_blocks(exp: Experiment) -> list[tuple]:
    """Last epoch from the history; the kept model (train.select_by) from the metrics; then time and speed."""
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
    images = [("image", f"figures/{stem(exp)}_{name}.png", f"{stem(exp)} {name}") for name in exp.images]
    health = exp.health
    if health is None:
        return [("text", "Gradient health was not recorded for this run."), *images]
    span = ", ".join("n/a" if n is None else f"{n:.3g}" for n in (health.min_grad_norm, health.max_grad_norm))
    frozen = health.frozen_layers
    items = [f"gradient norm of trained layers (min, max): {span}",
             f"vanishing gradients: {'yes' if health.vanishing_gradients else 'no'}",
             f"exploding gradients: {'yes' if health.exploding_gradients else 'no'}",
             f"frozen layers ({len(frozen)}): {', '.join(frozen) if frozen else 'none'}"]
    return [("list", items), *images]


def curve_blocks(exp: Experiment) -> list[tuple]:
    last = exp.history.iloc[-1]
    gap = {m: last[key("train", m)] - last[key("val", m)] for m in ("loss", "acc")}
    return [("image", f"figures/{stem(exp)}_curves.png", f"{stem(exp)} curves"),
            ("text", f"Generalisation gap at the last epoch (train - val): accuracy {gap['acc']:+.4f}, "
                     f"loss {gap['loss']:+.4f}.")]


def class_table(exp: Experiment) -> tuple:
    report = exp.classes
    names = [*exp.confusion.classes, *(a for a in AVERAGES if a in report)]
    rows = [[name, *(f"{report[name][k]:.3f}" for k in ("precision", "recall", "f1-score")),
             f"{report[name]['support']:.0f}"] for name in names]
    return ("table", ["class", "precision", "recall", "F1", "support"], rows)
