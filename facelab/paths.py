"""Every file a stage reads or writes, named once: the pipeline's outputs as declared in dvc.yaml, relative to a
root."""
from __future__ import annotations

from pathlib import Path

CHECKPOINTS = Path(".cache/facelab/checkpoints")  # outside every DVC output: survives a rerun
TRUNKS = Path(".cache/facelab/trunks")  # frozen trunks' outputs per prepared image, shared by runs (data/trunks.py)


def source_fingerprint(task: str, root: Path = Path(".")) -> Path:
    """The scan stage's listing of the task's source files (size, modification time): prepare's data dependency."""
    return root / "data" / "sources" / f"{task}.json"


def prepared(task: str, root: Path = Path(".")) -> Path:
    """The prepare stage's folder: every usable image once (pixels, labels, near-duplicate groups, the source's own
    test images), the manifest, the class list; train and evaluate split it by their seed (facelab.data.batches)."""
    return root / "data" / "prepared" / task


def prepared_images(folder: Path) -> Path:
    """A prepared folder's (n, size, size, 3) uint8 pixels, every usable image once."""
    return Path(folder) / "images.npy"


def prepared_labels(folder: Path) -> Path:
    """A prepared folder's (n,) class indices, in the images' row order."""
    return Path(folder) / "labels.npy"


def prepared_groups(folder: Path) -> Path:
    """A prepared folder's (n,) near-duplicate group ids, in the images' row order: a split never cuts a group."""
    return Path(folder) / "groups.npy"


def prepared_own_test(folder: Path) -> Path:
    """A prepared folder's (n,) bool: the image is in the source's own test split. Only for a source that has one
    (fer2013); without this file the split draws the test images too."""
    return Path(folder) / "own_test.npy"


def prepared_sizes(folder: Path) -> Path:
    """A prepared folder's (n, 2) int64 pixel size (width, height, EXIF orientation applied) of each image's file,
    (0, 0) where the image is not a file's centre square (a face crop, a fixed box). Only where prepare searched for
    cut copies (a source of files, not generated faces; data.<task>.cut_copies: search): `facelab evaluate` finds
    copies cut out of the model's images with it, as prepare did."""
    return Path(folder) / "sizes.npy"


def prepared_manifest(folder: Path) -> Path:
    """A prepared folder's file, class and near-duplicate group of every image, in the arrays' row order."""
    return Path(folder) / "manifest.csv"


def prepared_classes(folder: Path) -> Path:
    """A prepared folder's class names (index order) and image size."""
    return Path(folder) / "classes.json"


def data_counts(task: str, root: Path = Path(".")) -> Path:
    return root / "metrics" / task / "data.json"


def label_issues(task: str, root: Path = Path(".")) -> Path:
    """The audit stage's likely label errors of the prepared images (facelab.evaluation.label_issues)."""
    return root / "metrics" / task / "label_issues.json"


def label_issues_gallery(task: str, root: Path = Path(".")) -> Path:
    """The audit stage's gallery of those images, most likely first."""
    return root / "plots" / task / "label_issues.png"


def label_drop(task: str, root: Path = Path(".")) -> Path:
    """The prepared images the audit stage leaves out of every run's train and val splits
    (facelab.data.label_drop): its flagged images under data.<task>.label_issues: drop, none under report."""
    return root / "data" / "label_drop" / f"{task}.json"


RUN = "seed"  # a run's files are named seed<seed>


def run(seed: int) -> str:
    """One training run's name among an experiment's files: seed<seed>."""
    return f"{RUN}{seed}"


def trained_runs(task: str, recipe: str, root: Path = Path(".")) -> dict[int, Path]:
    """The model files found under models/<task>/<recipe>/, by seed."""
    folder = root / "models" / task / recipe
    found = folder.glob(f"{RUN}*.pt") if folder.is_dir() else []
    return dict(sorted((int(p.stem[len(RUN):]), p) for p in found if p.stem[len(RUN):].isdigit()))


def model(task: str, recipe: str, seed: int, root: Path = Path(".")) -> Path:
    """train's weights of one run: models/<task>/<recipe>/seed<seed>.pt."""
    return root / "models" / task / recipe / f"{run(seed)}.pt"


def model_info(task: str, recipe: str, seed: int, root: Path = Path(".")) -> Path:
    """Beside the weights: resolved recipe and params, classes, image size, training summary."""
    return model(task, recipe, seed, root).with_suffix(".json")


def plots(task: str, recipe: str, seed: int, root: Path = Path(".")) -> Path:
    """One run's plot files: plots/<task>/<recipe>/seed<seed>/."""
    return root / "plots" / task / recipe / run(seed)


def history(task: str, recipe: str, seed: int, root: Path = Path(".")) -> Path:
    """train's per-epoch scores, one column per names.key(split, metric)."""
    return plots(task, recipe, seed, root) / "history.csv"


def metrics(task: str, recipe: str, seed: int, root: Path = Path(".")) -> Path:
    """evaluate's compared numbers of one run: metrics/<task>/<recipe>/seed<seed>.json (details, classes beside)."""
    return root / "metrics" / task / recipe / f"{run(seed)}.json"


def train_outputs(task: str, recipe: str, seed: int, root: Path = Path(".")) -> dict[str, Path]:
    folder = plots(task, recipe, seed, root)
    return {"model": model(task, recipe, seed, root), "info": model_info(task, recipe, seed, root),
            "history": history(task, recipe, seed, root), "gradients": folder / "gradients.csv",
            "parameters": folder / "parameters.csv", "gradients_png": folder / "gradients.png",
            "parameters_png": folder / "parameters.png"}


def evaluate_outputs(task: str, recipe: str, seed: int, root: Path = Path(".")) -> dict[str, Path]:
    folder = plots(task, recipe, seed, root)
    scores = metrics(task, recipe, seed, root)
    return {"metrics": scores, "details": scores.with_name(f"{run(seed)}_details.json"),
            "classes": scores.with_name(f"{run(seed)}_classes.json"),
            "predictions": folder / "predictions.csv", "confusion": folder / "confusion.json",
            **explained_images(folder)}


def explained_images(folder: Path) -> dict[str, Path]:
    """evaluate's three images of an experiment: reliability diagram, mistake gallery, Grad-CAM saliency."""
    return {"reliability": folder / "reliability.png", "gallery": folder / "mistakes.png",
            "saliency": folder / "saliency.png"}


def external_outputs(task: str, recipe: str, seed: int, name: str, root: Path = Path(".")) -> dict[str, Path]:
    """`facelab evaluate --data <folder> --name <name>`: a run's scoring files for a labelled folder outside
    the pipeline, under metrics/<task>/external/<name>/<recipe>/seed<seed>.json and
    plots/<task>/external/<name>/<recipe>/seed<seed>/."""
    metrics = root / "metrics" / task / "external" / name / recipe
    folder = root / "plots" / task / "external" / name / recipe / run(seed)
    return {"metrics": metrics / f"{run(seed)}.json", "details": metrics / f"{run(seed)}_details.json",
            "classes": metrics / f"{run(seed)}_classes.json",
            "predictions": folder / "predictions.csv", "confusion": folder / "confusion.json",
            **explained_images(folder)}


def reports(root: Path = Path(".")) -> Path:
    return root / "reports"


def zscore_plots(root: Path = Path(".")) -> Path:
    return root / "plots" / "zscore"


def wandb_dir(setting: str, dvc_root: str | None) -> str:
    """wandb.dir (params: wandb.dir), a relative one taken from the repository root DVC names in DVC_ROOT; train
    starts its run there and evaluate reopens it there.

    `dvc exp run --queue` / `--temp` run the stages in a copy under .dvc/tmp/exps/ that is deleted
    afterwards; DVC sets DVC_ROOT to the original repository (dvc/repo/experiments/queue/base.py), so
    offline runs land in <repo>/wandb/ and survive. Parallel workers do not clash there: each run
    writes its own offline-run-<time>-<id> folder. Outside DVC (no DVC_ROOT) it is the working directory."""
    if dvc_root is None or Path(setting).is_absolute():
        return setting
    return str(Path(dvc_root) / setting)
