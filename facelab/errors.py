"""Every error a user can cause: bad params, bad data, missing weights, a diverging run. Stages print them as one 'error:' line."""
from __future__ import annotations


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
