"""Report stage: comparison sentences from two different metric sets, and the page built from fake experiment files."""
import html
import json
from html.parser import HTMLParser
from pathlib import Path

import matplotlib.image
import numpy as np
import pandas as pd
import pytest

from facelab import paths
from facelab.evaluation.records import Confusion, Details, Metrics
from facelab.evaluation.scores import class_report, error_zscore, zscore
from facelab.modelcard import Health
from facelab.reporting import comparison
from facelab.reporting.document import SECTIONS, computed_text
from facelab.reporting.document import write_report as run
from facelab.reporting.render import render_html, render_markdown
from facelab.reporting.results import Experiment, Run, load_experiment

CLASSES = {"face": ["other", "target"], "emotion": ["angry", "happy", "sad"]}
RECIPES = ("vgg16_finetune", "resnet18_scratch", "resnet18_pretrained")
CALIBRATED = {"temperature": 1.734, "bins": 15, "val": {"before": 0.121, "after": 0.032},
              "test": {"before": {"ece": 0.142, "ece_ci": [0.09, 0.2]},
                       "after": {"ece": 0.051, "ece_ci": [0.03, 0.11]}}}
HEALTHY = {"min_grad_norm": 0.002, "max_grad_norm": 3.5, "vanishing_gradients": False,
           "exploding_gradients": False, "frozen_layers": []}


def fake_experiment(task: str, recipe: str, val_acc: list[float], train_acc: float = 0.9, val_final: float = 0.8,
                    raw: list[list[int]] | None = None, health: dict | None = None, collapsed: bool = False,
                    verified: bool | None = None, macro_f1: float = 0.7,
                    predicted: list[int] | np.ndarray | None = None,
                    calibration: dict | None = None, seed: int = 42, train_seconds: float = 12.5) -> Experiment:
    """A one-seed experiment as load_experiment returns it, with the numbers a test controls.
    predicted: the test predictions (class indices, in the order expand(raw) gives the true labels), when they
    should differ from what `raw` says."""
    classes = CLASSES[task]
    counts = np.asarray(raw if raw is not None else np.eye(len(classes), dtype=int) * 10 + 1)
    epochs = np.arange(1, len(val_acc) + 1)
    history = pd.DataFrame({"epoch": epochs, "train/loss": 1.0 / epochs, "train/acc": np.minimum(1, 0.5 + 0.1 * epochs),
                            "val/loss": 1.2 / epochs, "val/acc": val_acc})
    actual, from_raw = expand(counts)
    predictions = np.asarray(predicted) if predicted is not None else from_raw
    scores = {"acc": 0.75, "loss": 0.6, "macro_f1": macro_f1}
    test = {"acc": 0.75, "acc_ci": [0.7, 0.8], "macro_f1": macro_f1, "macro_f1_ci": [macro_f1 - 0.05, macro_f1 + 0.05],
            "loss": 0.6}
    metrics = {"test": test, "train": {**scores, "acc": train_acc}, "val": {**scores, "acc": val_final},
               "best_epoch": len(val_acc), "train_seconds": train_seconds, "collapsed": collapsed,
               "vanishing_gradients": bool(health and health["vanishing_gradients"]),
               "exploding_gradients": bool(health and health["exploding_gradients"])}
    weights: dict[str, str | bool | None] = {"weights": "none", "file": None, "sha256": None, "verified": None}
    if verified is not None:
        metrics["weights_verified"] = verified
        weights = {"weights": "imagenet", "file": "resnet18-f37072fd.pth", "sha256": "0" * 64, "verified": verified}
    details = {"test_images": int(counts.sum()), "epochs": len(val_acc), "images_per_second": 321.0, "health": health,
               "collapse": {"collapsed": collapsed, "reason": "predicts 'other' for 100% of the test images"
                            if collapsed else None, "top_class_share": 1.0 if collapsed else 0.5},
               "weights": weights, "wandb": None, "select_by": "val_macro_f1",
               "recipe": {"arch": recipe.split("_")[0], "weights": "none" if recipe.endswith("scratch") else "imagenet",
                          "frozen": ["features"] if recipe.startswith("vgg") else [], "lr": 0.001, "optimizer": "adam"},
               "calibration": calibration}
    names = classes
    run = Run(
        seed=seed, metrics=Metrics.model_validate(metrics), details=Details.model_validate(details),
        history=history, confusion=Confusion(classes=classes, raw=counts.tolist(), zscore=zscore(counts).tolist()),
        predictions=pd.DataFrame({"actual": [names[i] for i in actual], "predicted": [names[i] for i in predictions]}),
        classes=class_report(actual, predictions, tuple(classes)))
    return Experiment(task=task, recipe=recipe, runs=[run])


def over_seeds(*per_seed: Experiment) -> Experiment:
    """One experiment whose runs are the given one-seed experiments' (each made with its own seed=)."""
    return Experiment(task=per_seed[0].task, recipe=per_seed[0].recipe, runs=[e.first for e in per_seed])


def expand(raw: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Label arrays whose confusion matrix is `raw`."""
    pairs = [(i, j) for (i, j), n in np.ndenumerate(raw) for _ in range(n)]
    return np.array([p[0] for p in pairs]), np.array([p[1] for p in pairs])


def write_experiment(root: Path, exp: Experiment, histograms: bool) -> None:
    """The files the train and evaluate stages write for each run (seed) of one experiment."""
    for one in exp.runs:
        scored = paths.evaluate_outputs(exp.task, exp.recipe, one.seed, root)
        plots = paths.plots(exp.task, exp.recipe, one.seed, root)
        scored["metrics"].parent.mkdir(parents=True, exist_ok=True)
        plots.mkdir(parents=True, exist_ok=True)
        assert one.details is not None and one.predictions is not None
        scored["metrics"].write_text(json.dumps(one.metrics.model_dump()))
        scored["details"].write_text(json.dumps(one.details.to_json()))
        scored["classes"].write_text(json.dumps(one.classes))
        one.history.to_csv(paths.history(exp.task, exp.recipe, one.seed, root), index=False)
        scored["confusion"].write_text(json.dumps(one.confusion.model_dump()))
        one.predictions.to_csv(scored["predictions"], index=False)
        for name in ("gradients", "parameters", "reliability", "mistakes", "saliency") if histograms else ():
            matplotlib.image.imsave(plots / f"{name}.png", np.random.default_rng(0).random((8, 8)))


def six_experiments(shift: float = 0.0) -> list[Experiment]:
    """Face runs with health, calibration and evaluate's images recorded, emotion runs without (as before those
    existed)."""
    exploding = {**HEALTHY, "max_grad_norm": 2500.0, "exploding_gradients": True}
    face = [fake_experiment("face", "vgg16_finetune", [0.6, 0.7, 0.8 + shift], health=HEALTHY, calibration=CALIBRATED),
            fake_experiment("face", "resnet18_scratch", [0.5, 0.9, 0.92], health=exploding, calibration=CALIBRATED),
            fake_experiment("face", "resnet18_pretrained", [0.7, 0.75, 0.8], train_acc=0.85, health=HEALTHY,
                            calibration=CALIBRATED)]
    return [*face, *(fake_experiment("emotion", recipe, [0.4, 0.5, 0.6],
                              raw=[[8, 1, 1], [1, 7, 6], [0, 1, 9]]) for recipe in RECIPES)]


def task(experiments: list[Experiment], name: str) -> list[Experiment]:
    return [e for e in experiments if e.task == name]


# --- comparison: pure functions from experiment dicts to data and sentences

def test_epochs_to_fraction_is_the_first_epoch_at_95_percent_of_the_best_val_accuracy():
    history = pd.DataFrame({"epoch": [1, 2, 3, 4, 5], "val/acc": [0.5, 0.8, 0.9, 0.95, 1.0]})
    assert comparison.epochs_to_fraction(history) == 4
    assert comparison.epochs_to_fraction(history, fraction=0.8) == 2


def test_convergence_sentence_names_the_fastest_recipe_and_changes_with_the_numbers():
    runs = task(six_experiments(), "face")
    assert comparison.convergence(runs)["resnet18_scratch"] == {"epochs": [2], "of": 3, "best_val_acc": [0.92]}
    assert comparison.convergence_sentence(runs).startswith("resnet18_scratch converged fastest")
    runs[0].first.history["val/acc"] = [0.95, 0.96, 0.97]  # vgg16 now at 95% of its best from epoch 1
    assert comparison.convergence_sentence(runs).startswith("vgg16_finetune converged fastest")


def test_convergence_sentence_reports_a_tie_instead_of_picking_one():
    runs = task(six_experiments(), "emotion")
    sentence = comparison.convergence_sentence(runs)
    assert sentence.startswith("vgg16_finetune, resnet18_scratch and resnet18_pretrained converged equally fast")
    assert "by epoch 3" in sentence


def test_generalisation_picks_the_smallest_train_val_gap_of_the_kept_model():
    runs = task(six_experiments(), "face")
    assert comparison.generalisation_gaps(runs) == {"vgg16_finetune": [pytest.approx(0.1)],
                                                   "resnet18_scratch": [pytest.approx(0.1)],
                                                   "resnet18_pretrained": [pytest.approx(0.05)]}
    sentence = comparison.generalisation_sentence(runs)
    assert sentence.startswith("resnet18_pretrained generalises best")
    assert "resnet18_pretrained +0.050)" in sentence
    train = runs[2].first.metrics.train.model_copy(update={"acc": 0.98})  # now the widest gap
    runs[2].first.metrics = runs[2].first.metrics.model_copy(update={"train": train})
    assert comparison.generalisation_sentence(runs).startswith(
        "vgg16_finetune and resnet18_scratch generalise equally well")


def test_confusions_are_named_by_class_pair_with_the_largest_off_diagonal_zscore():
    runs = task(six_experiments(), "emotion")
    top = comparison.top_confusions(runs)["resnet18_scratch"]
    raw = np.array([[8, 1, 1], [1, 7, 6], [0, 1, 9]])
    assert top == {"actual": "happy", "predicted": "sad", "z": pytest.approx(error_zscore(raw)[1, 2]), "count": 6}
    sentence = comparison.confusion_sentence(runs)
    assert sentence.startswith("The most over-represented confusion is happy -> sad (z-score 2.20 in ")
    assert "judged among the errors alone (z-scores over the off-diagonal cells)" in sentence
    assert "happy -> sad is the top confusion of 3 of 3 recipes." in sentence
    sad_angry = [[8, 1, 1], [1, 7, 1], [9, 1, 9]]
    runs[1].first.confusion = Confusion(classes=runs[1].confusion.classes, raw=sad_angry,
                                        zscore=zscore(np.array(sad_angry)).tolist())
    assert "sad -> angry (z-score 2.24 in resnet18_scratch)" in comparison.confusion_sentence(runs)


def test_a_confusion_that_takes_every_error_of_a_class_is_over_represented():
    # Issue 30: every error of angry goes to happy; the whole-matrix z-scores (diagonal included) put that cell
    # below 0, and the report said "No confusion is over-represented".
    raw = [[35, 15, 0], [0, 50, 0], [0, 0, 50]]
    runs = [fake_experiment("emotion", recipe, [0.4, 0.5, 0.6], raw=raw) for recipe in RECIPES]
    assert zscore(np.array(raw))[0, 1] < 0
    assert comparison.top_confusions(runs)["vgg16_finetune"] == {
        "actual": "angry", "predicted": "happy", "z": pytest.approx(5 ** 0.5), "count": 15}
    assert comparison.confusion_sentence(runs).startswith(
        "The most over-represented confusion is angry -> happy (z-score 2.24 in vgg16_finetune)")


def test_no_confusion_is_over_represented_when_every_off_diagonal_zscore_is_at_most_zero():
    runs = task(six_experiments(), "face")  # eye * 10 + 1: the errors are spread evenly
    assert set(comparison.top_confusions(runs).values()) == {None}
    assert comparison.confusion_sentence(runs).startswith("No confusion is over-represented")


def test_health_sentence_reports_flags_ranges_and_missing_runs():
    face, emotion = task(six_experiments(), "face"), task(six_experiments(), "emotion")
    assert comparison.health_sentence(face) == (
        "resnet18_scratch showed exploding gradients (largest gradient norm 2.5e+03).")
    assert comparison.health_sentence(emotion).startswith("Gradient health was not recorded")
    healthy = [face[0], face[2], emotion[0]]
    assert comparison.health_sentence(healthy) == (
        "None of the recorded runs showed vanishing or exploding gradients: trained layers' gradient norms "
        "stayed in [0.002, 3.5]. Not recorded for vgg16_finetune.")
    vanishing = Health(**{**HEALTHY, "min_grad_norm": 1e-9, "vanishing_gradients": True})
    details = face[1].first.details
    assert details is not None
    face[1].first.details = details.model_copy(update={"health": vanishing})
    assert ("resnet18_scratch showed vanishing gradients (smallest gradient norm 1e-09)"
            in comparison.health_sentence(face))


def test_the_comparison_text_changes_when_the_metrics_change():
    before = comparison.compare_task(task(six_experiments(), "face"))
    changed = [fake_experiment("face", "vgg16_finetune", [0.95, 0.96, 0.97], train_acc=0.81,
                               raw=[[5, 9], [1, 5]], health=HEALTHY),
               fake_experiment("face", "resnet18_scratch", [0.5, 0.9, 0.92], health=HEALTHY),
               fake_experiment("face", "resnet18_pretrained", [0.7, 0.75, 0.8], train_acc=0.85, health=HEALTHY)]
    after = comparison.compare_task(changed)
    assert sentence(before, "converged").startswith("resnet18_scratch converged fastest")
    assert sentence(after, "converged").startswith("vgg16_finetune converged fastest, reaching 95% of its own best "
                                                   "validation accuracy by epoch 1")
    assert sentence(before, "generalis").startswith("resnet18_pretrained generalises best")
    assert sentence(after, "generalis").startswith("vgg16_finetune generalises best")
    assert sentence(before, "confusion").startswith("No confusion is over-represented")
    assert sentence(after, "confusion").startswith("The most over-represented confusion is other -> target (z-score 1.")
    assert sentence(before, "gradients").startswith("resnet18_scratch showed exploding gradients")
    assert sentence(after, "gradients").startswith("No run showed vanishing or exploding gradients")


def sentence(sentences: list[str], word: str) -> str:
    """The one computed sentence about `word`."""
    (found,) = [s for s in sentences if word in s.split(":")[0] or word in s[:60]]
    return found


# --- the page and its Markdown twin, from files written in tmp_path

class Page(HTMLParser):
    """Collects element ids in document order, image sources and any external reference."""

    def __init__(self):
        super().__init__()
        self.ids, self.images, self.external = [], [], []

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        if "id" in attrs:
            self.ids.append(attrs["id"])
        if tag == "img":
            self.images.append(attrs["src"])
        links = [attrs.get("src") or "", attrs.get("href") or ""]
        if tag in ("script", "link", "iframe") or any("//" in link for link in links):
            self.external.append((tag, attrs))


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    root = tmp_path_factory.mktemp("results")
    for exp in six_experiments():
        write_experiment(root, exp, histograms=exp.task == "face")
    experiments = [load_experiment(t, r, [42], root) for t in CLASSES for r in RECIPES]
    comparisons = run(experiments, root / "reports", root / "plots" / "zscore")
    return root, experiments, comparisons


def test_load_experiment_tolerates_a_run_without_health_or_histograms(built):
    root, experiments, _ = built
    face, emotion = experiments[0], experiments[3]
    assert face.health == Health(**HEALTHY) and set(face.first.images) == {"gradients", "parameters"}
    assert emotion.health is None and emotion.first.images == {}
    assert emotion.first.history["val/acc"].tolist() == [0.4, 0.5, 0.6]


def test_page_has_every_section_of_every_experiment_in_order_and_works_offline(built):
    root, experiments, comparisons = built
    page = Page()
    page.feed((root / "reports" / "index.html").read_text())
    assert page.external == []
    for task_name in CLASSES:
        expected = [task_name, f"{task_name}_comparison"]
        for recipe in RECIPES:
            stem = f"{task_name}_{recipe}"
            expected += [stem, *(f"{stem}_{key}" for key, _ in SECTIONS)]
        start = page.ids.index(task_name)
        assert page.ids[start:start + len(expected)] == expected
    # per task the score bars and the overlaid val curves; per experiment curves and confusion; face histograms
    # and face's mistake gallery, saliency and reliability diagram, in that order, under the confusion matrix
    assert len(page.images) == 2 * 2 + 6 * 2 + 3 * 2 + 3 * 3
    face = [src for src in page.images if src.startswith("figures/face_vgg16_finetune_")]
    assert face == [f"figures/face_vgg16_finetune_{n}.png" for n in ("confusion", "gallery", "saliency",
                                                                     "reliability", "gradients", "parameters",
                                                                     "curves")]
    for src in page.images:
        assert not src.startswith(("/", "data:")) and ".." not in src
        assert (root / "reports" / src).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_page_shows_the_numbers_flags_and_computed_comparison(built):
    root, _, comparisons = built
    text = (root / "reports" / "index.html").read_text()
    assert ("<p>Trained 3 epochs in 12.5 s (321.0 images/second); kept epoch 3 (val_macro_f1: highest validation "
            "macro F1, ties to the lower loss).</p>" in text)
    assert "<li>exploding gradients: yes</li>" in text
    assert text.count("Gradient health was not recorded for this run.") == 3
    assert text.count("Calibration was not recorded for this run.") == 3
    assert text.count("Test expected calibration error (15 bins, 95% bootstrap interval): 0.142 [0.090, 0.200] "
                      "before temperature scaling, 0.051 [0.030, 0.110] after (temperature 1.734, fitted on the "
                      "validation split (val ECE 0.121 \u2192 0.032))") == 3
    assert "<td>0.6000</td>" in text  # emotion's last val accuracy in the epoch log
    assert "<p>Where these runs were computed is not recorded (results written before facelab recorded it).</p>" in text
    for sentences in comparisons.values():
        assert len(sentences) >= 5  # verdict, pretraining, convergence, generalisation, confusion, health
        assert f"<p>{html.escape(sentences[0])}</p>" in text  # the verdict, under the leaderboard
        for line in sentences[1:]:
            assert f"<li>{html.escape(line)}</li>" in text


def test_the_page_says_where_the_runs_were_computed_and_names_every_machine():
    def on(exp: Experiment, processor: str | None) -> Experiment:
        compute = processor and {"device": "cpu", "processor": processor, "kernels": "AVX2", "threads": 2,
                                 "torch": "2.14.1"}
        details = exp.runs[0].details
        assert details is not None
        exp.runs[0].details = Details.model_validate({**details.model_dump(), "compute": compute})
        return exp
    experiments = six_experiments()
    same = [on(exp, "AMD EPYC") for exp in experiments]
    assert computed_text(same) == ("Computed on CPU, AMD EPYC (AVX2 kernels, 2 threads), torch 2.14.1. A seeded run "
                                   "repeats bit-for-bit only on the same processor, kernels, threads and torch; on "
                                   "another CPU kind its scores move about as much as another seed's.")
    mixed = [on(exp, name) for exp, name in zip(six_experiments(), ["AMD EPYC", "Intel Xeon", None] * 2)]
    assert computed_text(mixed).startswith("Computed on CPU, AMD EPYC (AVX2 kernels, 2 threads), torch 2.14.1; CPU, "
                                           "Intel Xeon (AVX2 kernels, 2 threads), torch 2.14.1; 2 run(s) not "
                                           "recorded. ")


def test_markdown_report_has_the_same_sections_and_resolvable_images(built):
    root, _, comparisons = built
    markdown = (root / "reports" / "report.md").read_text()
    for task_name in CLASSES:
        assert f"## Task: {task_name}" in markdown and f"### {task_name}: comparison" in markdown
        for recipe in RECIPES:
            assert f"### {task_name} / {recipe}" in markdown
    for _, title in SECTIONS:
        assert markdown.count(f"#### {title}\n") == 6
    assert f"\n{comparisons['emotion'][0]}\n" in markdown
    for line in comparisons["emotion"][1:]:
        assert f"- {line}" in markdown
    links = [line[line.index("](") + 2:-1] for line in markdown.splitlines() if line.startswith("![")]
    assert len(links) == 22 + 9 and all((root / "reports" / link).is_file() for link in links)


def test_zscore_image_plots_are_written_per_experiment(built):
    root, _, _ = built
    images = sorted(p.relative_to(root / "plots" / "zscore").as_posix()
                    for p in (root / "plots" / "zscore").rglob("*.png"))
    assert images == sorted(f"{t}/{r}.png" for t in CLASSES for r in RECIPES)


def test_renderers_escape_user_text():
    blocks = [("heading", 2, "a <b> | c", "x"), ("table", ["k|v"], [["<i>"]]), ("text", "1 < 2")]
    assert "<h2 id='x'>a &lt;b&gt; | c</h2>" in render_html(blocks)
    assert "<td>&lt;i&gt;</td>" in render_html(blocks) and "<p>1 &lt; 2</p>" in render_html(blocks)
    assert "| k\\|v |" in render_markdown(blocks)


# --- a comparison to trust: ranking with tests, collapsed models and stand-in weights

def flagged_face_runs() -> list[Experiment]:
    """vgg16_finetune collapsed (every test image 'other') yet converges first with no gap; resnet18_pretrained
    trained from weights that are not ImageNet's."""
    return [fake_experiment("face", "vgg16_finetune", [0.95, 0.96, 0.97], train_acc=0.8, val_final=0.8,
                            raw=[[20, 0], [4, 0]], health=HEALTHY, collapsed=True, macro_f1=0.45),
            fake_experiment("face", "resnet18_scratch", [0.5, 0.9, 0.92], raw=[[18, 2], [1, 3]], health=HEALTHY,
                            macro_f1=0.8),
            fake_experiment("face", "resnet18_pretrained", [0.5, 0.6, 0.9], train_acc=0.99, raw=[[17, 3], [2, 2]],
                            health=HEALTHY, verified=False, macro_f1=0.7)]


def test_a_collapsed_model_is_named_with_causes_and_never_praised():
    sentences = comparison.compare_task(flagged_face_runs())
    assert not any(s.startswith("vgg16_finetune") and ("fastest" in s or "best" in s) for s in sentences)
    assert sentence(sentences, "converged").startswith("resnet18_scratch converged fastest")
    assert sentence(sentences, "collapsed") == (
        "vgg16_finetune collapsed and is ranked last: vgg16_finetune predicts 'other' for 100% of the test images; "
        "likely causes: a frozen trunk (features) with ImageNet weights: only the rest learns; "
        "learning rate 0.001 (adam).")
    assert [row["recipe"] for row in comparison.leaderboard(flagged_face_runs())] == [
        "resnet18_scratch", "resnet18_pretrained", "vgg16_finetune"]


def test_stand_in_weights_are_flagged_in_the_comparison_and_on_the_page(tmp_path):
    runs = flagged_face_runs()
    sentences = comparison.compare_task(runs)
    assert sentence(sentences, "Pretraining").startswith(
        "Pretraining is not measured here: resnet18_pretrained started from resnet18-f37072fd.pth, which is not "
        "torchvision's ImageNet file (a stand-in); it trained in 12 s against 12 s from random initialisation "
        "(1.00x the time).")
    for exp in runs:
        write_experiment(tmp_path, exp, histograms=False)
    loaded = [load_experiment("face", recipe, [42], tmp_path) for recipe in RECIPES]
    run(loaded, tmp_path / "reports", tmp_path / "zscore")
    page = (tmp_path / "reports" / "index.html").read_text()
    assert ("<p class='banner'>face/resnet18_pretrained: not ImageNet weights: these numbers do not measure "
            "pretraining") in page
    assert "<p class='banner'>Collapsed (predicts one class, or scores no better than the majority class or " \
           "chance): face/vgg16_finetune." in page
    board = page[page.index("<th>rank</th>"):page.index("</table>", page.index("<th>rank</th>"))]
    assert "<td>1</td><td>resnet18_scratch</td><td>0.750 [0.700, 0.800]</td><td>0.800 [0.750, 0.850]</td>" in board
    assert "<td>3</td><td>vgg16_finetune</td>" in board and "<td>collapsed</td>" in board


def two_runs(wrong_b: int, wrong_a: int, n: int = 200) -> list[Experiment]:
    """Two emotion-free binary runs on the same n test images: a errs on `wrong_a` images, b on `wrong_b`."""
    half = n // 2
    actual = np.array([0] * half + [1] * half)
    runs = []
    for recipe, wrong, f1 in (("resnet18_scratch", wrong_b, 0.9), ("resnet18_pretrained", wrong_a, 0.8)):
        predicted = actual.copy()
        predicted[:wrong] = 1  # the first `wrong` images of class 0 called 1
        raw = [[half, 0], [0, half]]
        runs.append(fake_experiment("face", recipe, [0.5, 0.6], raw=raw, predicted=predicted, macro_f1=f1,
                                    health=HEALTHY, verified=True if recipe.endswith("pretrained") else None))
    return runs


def test_the_verdict_names_a_winner_only_when_the_macro_f1_difference_is_more_than_noise():
    runs = two_runs(wrong_b=2, wrong_a=30)
    clear = comparison.verdict_sentence(runs, comparison.pairwise(runs))
    assert clear.startswith("resnet18_scratch is the best recipe: test macro F1 0.900 [0.850, 0.950] against "
                            "resnet18_pretrained 0.800 [0.750, 0.850]; macro F1 +0.")
    # 2,000 resamples resolve p down to 0.001 (two-sided), not the 0.0005 printed before (issue 30)
    assert "(paired bootstrap 95% CI [+0." in clear and ", p < 0.001); " in clear and "0.0005" not in clear
    assert ("accuracy (McNemar's exact test): p = 7.5e-09, 28 test images only resnet18_scratch got right, 0 only "
            "resnet18_pretrained on 200 test images.") in clear
    runs = two_runs(wrong_b=10, wrong_a=13)
    close = comparison.verdict_sentence(runs, comparison.pairwise(runs))
    assert close.startswith("resnet18_scratch and resnet18_pretrained cannot be told apart on 200 test images")
    assert "p = 0.25, 3 test images only resnet18_scratch got right, 0 only resnet18_pretrained" in close
    # not "about N test images would tell them apart", which put the observed difference into the power formula
    assert close.endswith("; with 200 test images, a macro F1 difference of at least 0.025 would be found 80% of "
                          "the time (p < 0.05).")


def test_p_is_printed_no_finer_than_its_test_resolves():
    # Issue 30: p = 0 from 2,000 resamples was printed "p < 0.0005"; two-sided, they resolve 0.001, and 0.003 once
    # Holm-adjusted over three pairs. A t distribution's (or McNemar's) p is exact and keeps its digits.
    assert comparison.p_text(0.0, 2000) == "< 0.001"
    assert comparison.p_text(0.0, 2000, comparisons=3) == "< 0.003"
    assert comparison.p_text(0.0, 1500) == "< 0.002"  # 2 / 1500 = 0.00133, rounded up so the claim stays true
    assert comparison.p_text(0.012, 2000) == "= 0.012"
    assert comparison.p_text(0.0004, None) == "= 0.0004"
    third = fake_experiment("face", "vgg16_finetune", [0.5, 0.6], raw=[[100, 0], [0, 100]], macro_f1=0.7,
                            predicted=[1] * 60 + [0] * 40 + [1] * 100, health=HEALTHY)
    pairs = comparison.pairwise([*two_runs(wrong_b=2, wrong_a=30), third])
    assert len(pairs) == 3 and {p.over_runs.p_value for p in pairs} == {0.0}
    for pair_ in pairs:
        assert "p < 0.001; Holm over 3 comparisons: p < 0.003, survives)" in comparison.difference_text(pair_)
    from facelab.reporting.document import pairwise_table
    assert {(row[2], row[3]) for row in pairwise_table(pairs)[2]} == {("< 0.001", "< 0.003")}


def test_the_kept_epoch_names_its_rule_and_the_augmentation_applied():
    from facelab.reporting.document import KEPT_BY, augment_text
    applied = {"hflip": True, "crop_scale": [0.7, 1.0], "rotation": 10.0, "brightness": 0.0, "contrast": 0.0,
               "erasing": 0.25}
    assert augment_text(applied) == " Augmentation: hflip, crop_scale [0.7, 1.0], rotation 10.0, erasing 0.25."
    assert augment_text({"hflip": False, "crop_scale": [1.0, 1.0]}) == " Augmentation: none."
    assert augment_text(None) == ""
    assert KEPT_BY["macro_f1"] == "highest validation macro F1, ties to the lower loss"
