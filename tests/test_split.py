import numpy as np
import pytest

from facelab.data.split import stratified_split
from facelab.errors import DataError
from facelab.params import Split

FRACTIONS = Split(0.7, 0.15, 0.15)


def test_split_is_stratified_disjoint_complete_and_seeded():
    labels = np.array([0] * 500 + [1] * 100)
    splits = stratified_split(labels, FRACTIONS, 7, ("other", "target"))
    joined = np.concatenate(list(splits.values()))
    assert sorted(joined.tolist()) == list(range(600))
    assert len(splits["test"]) == 90 and len(splits["val"]) == 90
    for index in splits.values():
        assert labels[index].mean() == pytest.approx(1 / 6, abs=0.02)
    again = stratified_split(labels, FRACTIONS, 7, ("other", "target"))
    other_seed = stratified_split(labels, FRACTIONS, 8, ("other", "target"))
    assert all(np.array_equal(splits[k], again[k]) for k in splits)
    assert not np.array_equal(splits["test"], other_seed["test"])


def test_too_few_images_in_a_class_names_it():
    labels = np.array([0] * 50 + [1] * 3)
    with pytest.raises(DataError, match=r"target: 3 .*at least 7"):
        stratified_split(labels, FRACTIONS, 0, ("other", "target"))
