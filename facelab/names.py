"""Metric names: a score is (split, metric), e.g. ("val", "macro_f1"); this is the one mapping from that pair to the
keys the files and W&B use. history.csv and W&B log `val/macro_f1`; the metrics JSON nests it as {"val":
{"macro_f1": ...}}, which DVC shows as `val.macro_f1`; the kept epoch's scores are W&B's `best/val/macro_f1`;
train.select_by names a val score as `val_<metric>`."""
from __future__ import annotations

SPLITS = ("train", "val", "test")  # the prepared folder's splits, in this order
METRICS = ("loss", "acc", "macro_f1")  # every score of a split
LABEL_METRICS = ("acc", "macro_f1")  # the scores of the predicted labels alone: those with bootstrap intervals
KEPT = "best"  # W&B prefix of the kept epoch's scores: W&B keeps the last epoch's under the plain keys


def key(split: str, metric: str, prefix: str = "") -> str:
    """The logged name of a score: history.csv's column and W&B's key (with `prefix`, e.g. best/val/acc)."""
    return f"{prefix}/{split}/{metric}" if prefix else f"{split}/{metric}"


def selected(select_by: str) -> tuple[str, str]:
    """train.select_by as (split, metric): val_macro_f1 -> ("val", "macro_f1")."""
    split, metric = select_by.split("_", 1)
    return split, metric
