"""Run tracking: one function logs an epoch's metrics to the console and, when enabled, to W&B. The test split's
scores are not train's: evaluate adds them to the same run (facelab.evaluation.tracking)."""
from __future__ import annotations

import subprocess
from pathlib import Path

import numpy as np

from facelab import names, paths
from facelab.names import KEPT
from facelab.params import WandbParams
from facelab.training.health import wandb_histograms
from facelab.wandb_runs import init_or_offline


def start_wandb(settings: WandbParams, task: str, recipe: str, seed: int, config: dict, dvc_root: str | None = None):
    """Start a W&B run for one training run: grouped by experiment (<task>/<recipe>, so W&B shows its seeds
    together) and named <task>/<recipe>/seed<seed>; None when W&B is disabled.
    dvc_root: the DVC_ROOT the stage was started with (see facelab.paths.wandb_dir).

    An online run that cannot start (no key, no network) falls back to offline with one warning,
    so no training is lost; `wandb sync` uploads it later."""
    if settings.mode == "disabled":
        return None
    import wandb  # imported here: a disabled run should not pay for the import

    directory = paths.wandb_dir(settings.dir, dvc_root)

    def init(mode):
        return wandb.init(mode=mode, project=settings.project, entity=settings.entity, dir=directory,
                          group=f"{task}/{recipe}", name=f"{task}/{recipe}/{paths.run(seed)}", job_type="train",
                          config=config, tags=[task, recipe, paths.run(seed)], reinit="finish_previous")
    return init_or_offline(init, settings.mode, directory, "W&B run")


def log_epoch(run, prefix: str, epochs: int, row: dict, images_per_second: float,
              histograms: dict[str, np.ndarray] | None = None) -> None:
    """Print the epoch line and send the same row (training.loop.epoch_row: 'train/loss', ...) to W&B, with the
    training speed so far and the trained layers' gradient and parameter histograms (histograms: the health
    recorder's samples of this epoch, 'gradients/<layer>' -> values: the last batch's gradients, the weights)."""
    print(f"[{prefix}] epoch {row['epoch']}/{epochs}  "
          f"train loss {row[names.key('train', 'loss')]:.4f} acc {row[names.key('train', 'acc')]:.4f}  "
          f"val loss {row[names.key('val', 'loss')]:.4f} acc {row[names.key('val', 'acc')]:.4f} "
          f"macro_f1 {row[names.key('val', 'macro_f1')]:.4f}", flush=True)
    if run is not None:
        import wandb

        shown = {key: wandb.Histogram(np_histogram=counts_edges)
                 for key, counts_edges in wandb_histograms(histograms or {}).items()}
        run.log({**row, "images_per_second": images_per_second, **shown}, step=row["epoch"])


def relog_history(run, rows: list[dict]) -> None:
    """A resumed training's new W&B run gets the epochs completed before the interruption, same keys."""
    for row in rows if run is not None else []:
        run.log(dict(row), step=row["epoch"])


def run_location(run) -> dict | None:
    """Where to find a W&B run: its URL (online) and its local folder, as the report links them."""
    if run is None:
        return None
    folder = Path(run.dir).parent  # run.dir is <wandb dir>/wandb/<run folder>/files
    return {"mode": run.settings.mode, "id": run.id, "url": run.url, "folder": f"wandb/{folder.name}"}


def flat_summary(summary: dict, prefix: str = "") -> dict:
    """A nested run summary as W&B summary keys (facelab.names.key): {"val": {"acc": x}} becomes {"val/acc": x}."""
    flat = {}
    for key, value in summary.items():
        if isinstance(value, dict):
            flat.update(flat_summary(value, f"{prefix}{key}/"))
        else:
            flat[f"{prefix}{key}"] = value
    return flat


def wandb_summary(summary: dict) -> dict:
    """The run summary (training.loop.run_summary) as W&B summary keys. W&B keeps the last epoch's value under
    each logged key (val/acc, ...), so the kept epoch's scores go under best/<split>/<metric>; the rest is
    flattened as it is (health/vanishing_gradients, train_seconds, ...)."""
    scores = {split: summary[split] for split in ("train", "val") if split in summary}
    rest = {key: value for key, value in summary.items() if key not in scores}
    return {**flat_summary(scores, f"{KEPT}/"), **flat_summary(rest)}


def git_commit() -> str | None:
    """The checked-out commit, recorded in each run's config; None outside a git repository."""
    try:
        out = subprocess.run(["git", "rev-parse", "HEAD"], capture_output=True, text=True, check=True)
        return out.stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return None


def finish_wandb(run, summary: dict, exit_code: int = 0, leave_open: bool = False) -> None:
    """Write the run summary and finish the run; leave_open: not finished, for this process to add the test scores
    (facelab.evaluation.tracking finds it as W&B's current run)."""
    if run is None:
        return
    for key, value in summary.items():
        run.summary[key] = value
    if not leave_open:
        run.finish(exit_code=exit_code)
