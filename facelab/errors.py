"""Every error a user can cause: bad params, bad data, missing weights, a diverging run.
Stages print them as one 'error:' line."""
from __future__ import annotations

import difflib


class UserError(Exception):
    """Bad params, data or environment: the message says what is wrong, where, and how to fix it."""


class ParamsError(UserError):
    """params.yaml is wrong: the message names the key, the value and what is allowed."""


class DataError(UserError):
    """The data cannot be prepared: a missing or empty class folder, too many unreadable files, too few images."""


class WeightsUnavailable(UserError):
    """Pretrained weights are neither cached nor downloadable."""


class TrainingDiverged(UserError):
    """The loss became NaN or infinite."""


class ModelFileError(UserError):
    """A model file and the params saved beside it do not fit together."""


def closest_key(key: str, allowed) -> str | None:
    """The likeliest intended name, for an error's "did you mean": a near spelling, else an abbreviation (lr)."""
    close = difflib.get_close_matches(key, list(allowed), n=1)
    letters = [name for name in allowed if name[:1] == key[:1] and _subsequence(name, key)]
    return (close or letters or [None])[0]


def _subsequence(short: str, long: str) -> bool:
    letters = iter(long)
    return all(char in letters for char in short)
