"""The report over several training runs (seeds): mean ± sd and each seed's value, the ranking by the mean, the
verdict decided on the interval over seeds and test images, Almost Stochastic Order beside it, the line saying
what the intervals cover, and the one-seed report saying run-to-run variation is not included."""
from __future__ import annotations

import re

import numpy as np
import pytest

from facelab.reporting import comparison
from facelab.reporting.document import write_report
from facelab.reporting.results import Experiment, load_experiment
from tests.test_report import HEALTHY, fake_experiment, over_seeds, write_experiment

SEEDS = (42, 43, 44)
N = 200  # test images per seed


def binary_run(recipe: str, seed: int, wrong: int, collapsed: bool = False) -> Experiment:
    """One seed's run on its own N test images (half each class): the first `wrong` images of class 0 called 1."""
    actual = np.array([0] * (N // 2) + [1] * (N // 2))
    predicted = actual.copy()
    predicted[:wrong] = 1
    f1 = float(np.mean([2 * ((actual == c) & (predicted == c)).sum() / ((actual == c).sum() + (predicted == c).sum())
                        for c in (0, 1)]))
    return fake_experiment("face", recipe, [0.5, 0.6, 0.7 + seed / 1000], raw=[[N // 2, 0], [0, N // 2]],
                           predicted=list(predicted), macro_f1=f1, health=HEALTHY, seed=seed, collapsed=collapsed,
                           verified=True if recipe.endswith("pretrained") else None, train_seconds=10.0 + seed - 42)


def recipes(wrong_scratch: list[int], wrong_pretrained: list[int], seeds=SEEDS) -> list[Experiment]:
    return [over_seeds(*(binary_run("resnet18_scratch", s, w) for s, w in zip(seeds, wrong_scratch))),
            over_seeds(*(binary_run("resnet18_pretrained", s, w) for s, w in zip(seeds, wrong_pretrained)))]


def test_each_experiment_shows_mean_sd_and_each_seeds_value_and_ranks_by_the_mean():
    runs = recipes([2, 3, 4], [30, 28, 32])
    scratch = runs[0]
    values = scratch.test_values("macro_f1")
    text = comparison.score_text(scratch)
    assert text == (f"{np.mean(values):.3f} ± {np.std(values, ddof=1):.3f} (seeds 42, 43, 44: "
                    f"{values[0]:.3f}, {values[1]:.3f}, {values[2]:.3f})")
    # seed 42 alone would rank pretrained first; the mean over the seeds does not
    runs = recipes([40, 3, 4], [5, 28, 32])
    assert [row["recipe"] for row in comparison.leaderboard(runs)] == ["resnet18_scratch", "resnet18_pretrained"]


def test_a_consistent_difference_over_three_seeds_is_called_with_its_interval_over_runs_and_aso():
    runs = recipes([2, 3, 4], [30, 28, 32])
    pairs = comparison.pairwise(runs)
    verdict = comparison.verdict_sentence(runs, pairs)
    assert verdict.startswith("resnet18_scratch is the best recipe: test macro F1 ")
    assert "over 3 seeds (95% CI over seeds and test images [+0." in verdict
    assert "over 3 seeds (600 test images in all)." in verdict
    (pair,) = pairs
    assert pair.over_runs.seeds == SEEDS and pair.aso is not None and pair.ahead == "resnet18_scratch"
    # every seed of scratch beats every seed of pretrained: ASO's violation ratio is near 0, shown in the sentence
    assert pair.aso < 0.2 and f"Almost Stochastic Order: ε_min {pair.aso:.2f} that resnet18_scratch is better " \
                              f"(deemed better)" in verdict


def test_a_change_on_one_seed_alone_is_not_called_a_difference():
    runs = recipes([2, 20, 22], [30, 21, 19])  # seed 42 alone: 28 images apart; seeds 43 and 44: none
    (pair,) = comparison.pairwise(runs)
    first = pair.over_runs.per_seed_ci[0]
    assert first[0] > 0 or first[1] < 0  # seed 42 on its own is a clear difference ...
    assert not pair.significant  # ... but over the seeds it is not
    verdict = comparison.verdict_sentence(runs, [pair])
    assert verdict.startswith("resnet18_scratch and resnet18_pretrained cannot be told apart over 3 seeds")


def test_the_interval_over_seeds_is_at_least_as_wide_as_one_seeds_paired_interval():
    runs = recipes([2, 8, 14], [30, 16, 20])
    (pair,) = comparison.pairwise(runs)
    lo, hi = pair.over_runs.ci
    alone = comparison.pairwise([Experiment(e.task, e.recipe, e.runs[:1]) for e in runs])[0].over_runs
    assert hi - lo >= alone.ci[1] - alone.ci[0] > 0
    assert (alone.per_seed == pair.over_runs.per_seed[:1]
            or alone.per_seed[0] == pytest.approx(-pair.over_runs.per_seed[0]))


def test_one_seed_says_run_to_run_variation_is_not_included_and_has_no_aso():
    runs = recipes([2], [30], seeds=(42,))
    line = comparison.coverage_text(runs)
    assert "One training run per recipe (seed 42), so run-to-run variation is not included" in line
    (pair,) = comparison.pairwise(runs)
    assert pair.aso is None and not pair.over_runs.runs_included
    assert "paired bootstrap 95% CI" in comparison.verdict_sentence(runs, [pair])
    three = comparison.coverage_text(recipes([2, 3, 4], [30, 28, 32]))
    assert three.startswith("What the intervals cover: 3 training runs per recipe (seeds 42, 43, 44")
    assert "not included" not in three


def test_a_model_that_collapsed_on_one_seed_is_collapsed_and_says_on_which():
    scratch = over_seeds(binary_run("resnet18_scratch", 42, 2), binary_run("resnet18_scratch", 43, 3, collapsed=True),
                         binary_run("resnet18_scratch", 44, 4))
    runs = [scratch, recipes([2, 3, 4], [30, 28, 32])[1]]
    assert scratch.collapsed and scratch.collapsed_seeds == [43]
    assert [row["recipe"] for row in comparison.leaderboard(runs)] == ["resnet18_pretrained", "resnet18_scratch"]
    sentence = comparison.collapse_sentence(runs)
    assert sentence is not None and sentence.startswith(
        "resnet18_scratch collapsed and is ranked last: resnet18_scratch (collapsed on 1 of 3 seeds) on seed 43: ")


def test_the_written_report_over_three_seeds(tmp_path):
    runs = recipes([2, 3, 4], [30, 28, 32])
    for exp in runs:
        write_experiment(tmp_path, exp, histograms=False)
    loaded = [load_experiment("face", e.recipe, list(SEEDS), tmp_path) for e in runs]
    assert [run.seed for run in loaded[0].runs] == list(SEEDS)
    write_report(loaded, tmp_path / "reports", tmp_path / "zscore")
    markdown = (tmp_path / "reports" / "report.md").read_text()
    assert "What the intervals cover: 3 training runs per recipe (seeds 42, 43, 44" in markdown
    board = re.search(r"\| 1 \| resnet18_scratch \| ([^|]+) \| ([^|]+) \|", markdown)
    assert board and board.group(2).strip() == comparison.score_text(loaded[0]).strip()
    (pair,) = comparison.pairwise(loaded)
    assert f"| {pair.aso:.2f} (resnet18_scratch) |" in markdown  # the ASO column
    assert markdown.count("seed 43:") >= 3  # each seed's log, summary and calibration in the folded section
    assert (tmp_path / "reports" / "figures" / "face_resnet18_scratch_curves.png").is_file()
