import numpy as np
import pytest

from facelab.evaluation.scores import class_report, confusion, error_zscore, split_scores, zscore


def test_zscore_matches_a_hand_computed_example():
    z = zscore(np.array([[179, 0], [2, 35]]))
    np.testing.assert_allclose(z, [[1.70, -0.73], [-0.71, -0.26]], atol=0.005)


def test_zscore_uses_population_std_and_whole_matrix_mean():
    m = np.arange(9).reshape(3, 3)
    z = zscore(m)
    assert z.mean() == pytest.approx(0)
    assert z.std(ddof=0) == pytest.approx(1)
    assert z[2, 2] == pytest.approx((8 - 4) / np.std(np.arange(9)))


def test_zscore_of_constant_matrix_is_zero_not_nan():
    assert np.array_equal(zscore(np.full((2, 2), 5)), np.zeros((2, 2)))


def test_error_zscore_judges_the_errors_alone():
    # Issue 30: every error of class 0 goes to class 1, yet the whole-matrix z-score of that cell is below 0
    # (the diagonal sets the mean), so the report said no confusion stands out.
    m = np.array([[35, 15, 0], [0, 50, 0], [0, 0, 50]])
    assert zscore(m)[0, 1] < 0
    z = error_zscore(m)
    assert np.isnan(np.diagonal(z)).all()
    errors = np.array([15, 0, 0, 0, 0, 0])  # the six off-diagonal cells
    assert z[0, 1] == pytest.approx((15 - errors.mean()) / errors.std()) == pytest.approx(5 ** 0.5)
    assert np.nanargmax(z) == 1 and z[~np.isnan(z)].mean() == pytest.approx(0)


def test_error_zscore_of_evenly_spread_or_no_errors_is_zero():
    assert np.array_equal(error_zscore(np.array([[40, 3], [3, 40]])), [[np.nan, 0], [0, np.nan]], equal_nan=True)
    assert np.nansum(np.abs(error_zscore(np.eye(3) * 50))) == 0


def test_confusion_rows_are_actual_and_keeps_absent_classes():
    m = confusion(np.array([0, 0, 1, 1]), np.array([0, 1, 1, 1]), 3)
    assert m.tolist() == [[1, 1, 0], [0, 2, 0], [0, 0, 0]]


def test_split_scores_and_class_report():
    actual, predicted = np.array([0, 0, 1, 1, 2, 2]), np.array([0, 1, 1, 1, 2, 0])
    scores = split_scores(actual, predicted, 0.5, 3)
    assert scores["acc"] == pytest.approx(4 / 6)
    assert scores["loss"] == 0.5
    report = class_report(actual, predicted, ("angry", "happy", "sad"))
    assert report["happy"]["precision"] == pytest.approx(2 / 3)
    assert report["sad"]["recall"] == pytest.approx(1 / 2)
    assert report["angry"]["support"] == 2
    f1s = [report[c]["f1-score"] for c in ("angry", "happy", "sad")]
    assert scores["macro_f1"] == pytest.approx(np.mean(f1s))


@pytest.mark.parametrize("seed", range(6))
def test_class_report_matches_scikit_learn(seed):
    from sklearn.metrics import classification_report
    rng = np.random.default_rng(seed)
    k = 2 + seed % 3
    actual = rng.integers(0, k - (seed == 4), 30)  # seed 4: one class never occurs
    predicted = np.where(rng.random(30) < 0.6, actual, rng.integers(0, k - (seed == 5), 30))  # 5: never predicted
    names = tuple(f"c{i}" for i in range(k))
    ours = class_report(actual, predicted, names)
    theirs = classification_report(actual, predicted, labels=list(range(k)), target_names=list(names),
                                   output_dict=True, zero_division=0)
    assert ours.keys() == theirs.keys() and ours[names[0]]["support"] == theirs[names[0]]["support"]
    assert type(ours[names[0]]["support"]) is type(theirs[names[0]]["support"])  # the same JSON
    for key, value in theirs.items():
        assert ours[key] == (pytest.approx(value) if isinstance(value, float) else
                             {name: pytest.approx(v) for name, v in value.items()})
