"""`facelab evaluate`'s check of the model's own data: the evaluated images compared with the prepared images the
model was split from (data/prepared/<task>/, split again by its card's seed and shares), exactly (decoded pixels)
and as near-duplicates (facelab.data.near, as prepare groups them: copies cut out of a photo too where both are
files of known sizes); a folder of mostly training images is refused."""
from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from facelab import paths
from facelab.data import pixels as store
from facelab.data.batches import prepared_split
from facelab.data.cuts import Photos
from facelab.data.images import Images, pixel_digest
from facelab.data.near import near_groups
from facelab.data.phash import hashes
from facelab.errors import UserError
from facelab.files import read_json
from facelab.modelfile import TrainedModel
from facelab.names import SPLITS
from facelab.params import Split

# The share of the evaluated images that may be the model's own train or val images (exact or near-duplicate copies)
# before evaluate refuses to score them: a few chance look-alikes in a large folder pass; a folder made from the
# training data (84 of 120 images, the case that asked for this check) does not.
MAX_SEEN_SHARE = 0.05
SEEN_SPLITS = ("train", "val")  # the splits a model has learned from or was selected on
SHOWN = 3  # files named in a printed line; details.json lists them all


class NotChecked(Exception):
    """The model's prepared data is not there as it was trained on; the message says why."""


@dataclass(frozen=True)
class Overlap:
    """The evaluated images that are the model's own data, per split (train, val, test): `exact` files decode to
    the same pixels as one of the split's prepared images; `near` files (exact ones not repeated) fall in one
    near-duplicate group with one (facelab.data.near, as prepare groups them: had prepare seen the file, it would
    have been in that split). `unchecked`: why no comparison was made (None when it was)."""
    prepared: str
    exact: dict[str, list[str]] = field(default_factory=dict)
    near: dict[str, list[str]] = field(default_factory=dict)
    unchecked: str | None = None

    def files(self, split: str) -> list[str]:
        return sorted(set(self.exact.get(split, [])) | set(self.near.get(split, [])))

    def seen(self) -> list[str]:
        """The images the model was trained or selected on: a fair score leaves them out."""
        return sorted({file for split in SEEN_SPLITS for file in self.files(split)})

    def warning(self, total: int) -> str | None:
        if self.unchecked is not None:
            return f"the images could not be compared with the model's own train/val/test images: {self.unchecked}"
        seen = self.seen()
        if not seen:
            return None
        return (f"{len(seen)} of the {total} images are the model's own train or val images (exact or near-duplicate "
                f"copies, e.g. {', '.join(seen[:SHOWN])}); the scores include them and overstate the model")

    def to_json(self) -> dict:
        if self.unchecked is not None:
            return {"checked": False, "prepared": self.prepared, "reason": self.unchecked}
        return {"checked": True, "prepared": self.prepared, "max_seen_share": MAX_SEEN_SHARE, "seen": len(self.seen()),
                "splits": {split: {"exact": len(self.exact[split]), "near": len(self.near[split])} for split in SPLITS},
                "files": {split: {"exact": self.exact[split], "near": self.near[split]} for split in SPLITS}}


def model_overlap(trained: TrainedModel, images: Images, root: Path) -> Overlap:
    """The evaluated squares compared with the prepared images the model was split from (root's
    data/prepared/<task>/, split again by the card's seed and shares)."""
    prepared = paths.prepared(trained.card.settings.task, root)
    try:
        rows = model_split(trained, prepared)
    except NotChecked as why:
        return Overlap(str(prepared), unchecked=str(why))
    stored = np.load(paths.prepared_images(prepared), mmap_mode="r")
    split_of = np.empty(len(stored), object)
    for split, index in rows.items():
        split_of[index] = split
    digest_splits: dict[str, set[str]] = defaultdict(set)
    for digest, split in zip(row_digests(stored), split_of):
        digest_splits[digest].add(split)
    squares = np.asarray(images.pixels)
    photos = cut_search(stored, prepared, images)
    groups = near_groups(np.concatenate([hashes(stored), hashes(squares)]), photos=photos)
    group_splits: dict[int, set[str]] = defaultdict(set)
    for group, split in zip(groups[:len(stored)], split_of):
        group_splits[int(group)].add(split)
    exact: dict[str, list[str]] = {split: [] for split in SPLITS}
    near: dict[str, list[str]] = {split: [] for split in SPLITS}
    for file, square, group in zip(images.files, squares, groups[len(stored):]):
        same = digest_splits.get(pixel_digest(square), set())
        for split in same:
            exact[split].append(file)
        for split in group_splits.get(int(group), set()) - same:
            near[split].append(file)
    return Overlap(str(prepared), exact, near)


def cut_search(stored: np.ndarray, prepared: Path, images: Images) -> Photos | None:
    """What near_groups needs to find copies cut out of a photo between the prepared and the evaluated images, as
    prepare found them among its own: both are files with their pixel sizes (prepare keeps them where it searched:
    a source of files, data.<task>.cut_copies: search); None otherwise (the hashes alone, as prepare). The pixels
    are the prepared rows then the evaluated squares, in memory (12 KB an image at 64 px)."""
    sizes = paths.prepared_sizes(prepared)
    if images.sizes is None or not sizes.is_file():
        return None
    pixels = np.concatenate([np.asarray(stored), np.asarray(images.pixels)])
    return Photos(pixels, np.arange(len(pixels)), np.concatenate([np.load(sizes), images.sizes]))


def model_split(trained: TrainedModel, prepared: Path) -> dict[str, np.ndarray]:
    """The prepared rows of the model's train, val and test splits; NotChecked when the folder is missing or no
    longer holds the data the model was trained on (its card's classes, image size and images per split)."""
    settings = trained.card.settings
    if not paths.prepared_classes(prepared).is_file():
        raise NotChecked(f"'{prepared}' does not exist (the model was copied without the data it was trained on); "
                         f"run from the repository that trained it, or `dvc pull {prepared.as_posix()}` there")
    info = read_json(paths.prepared_classes(prepared))
    if (info.get("classes"), info.get("img_size")) != (list(settings.classes), settings.img_size):
        raise NotChecked(f"'{prepared}' holds other data (classes {info.get('classes')} at {info.get('img_size')} "
                         f"px) than the model was trained on ({list(settings.classes)} at {settings.img_size} px)")
    try:
        # without the rows the run left out of train and val (data.<task>.label_issues: drop): never trained on
        rows = prepared_split(prepared, settings.seed, Split(**settings.split.fractions), settings.split.left_out)
    except UserError as error:
        raise NotChecked(f"'{prepared}' cannot be split as the model's card says ({error})") from error
    labels = np.load(paths.prepared_labels(prepared))
    counts = {split: {name: int((labels[index] == k).sum()) for k, name in enumerate(settings.classes)}
              for split, index in rows.items()}
    if counts != settings.split.counts:
        raise NotChecked(f"'{prepared}' was prepared again since the model was trained (images per split and class "
                         f"now: {counts}; the model's card: {settings.split.counts})")
    return rows


def row_digests(pixels: np.ndarray) -> list[str]:
    """facelab.data.images.pixel_digest of each row, reading a memmap a chunk at a time."""
    step = max(1, store.CHUNK_BYTES // store.row_bytes(pixels))
    return [pixel_digest(row) for start in range(0, len(pixels), step)
            for row in store.take(pixels, np.arange(start, min(len(pixels), start + step)))]


def check_unseen(seen: Overlap, data: Path, total: int) -> None:
    """Refuse to score a folder of which over MAX_SEEN_SHARE are the model's train or val images."""
    files = seen.seen()
    if len(files) <= MAX_SEEN_SHARE * total:
        return
    per_split = ", ".join(f"{len(seen.files(split))} {split}" for split in SEEN_SPLITS)
    raise UserError(f"{len(files)} of the {total} images in --data '{data}' ({len(files) / total:.0%}) are the "
                    f"model's own training images ({per_split}; exact or near-duplicate copies, e.g. "
                    f"{', '.join(files[:SHOWN])}), over the {MAX_SEEN_SHARE:.0%} evaluate accepts: scores on them "
                    f"would overstate the model; evaluate on images it has not seen, or pass --allow-overlap to score "
                    f"anyway")


