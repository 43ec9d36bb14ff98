"""`facelab audit DIR`: likely label errors in any labelled folder (DIR/<class>/*), without a trained pipeline: the
audit stage's k-fold out-of-sample probabilities and cleanlab's ranking (facelab.evaluation.audit), on the images
prepare's folder source would read (same decoding, same fates for duplicates). Prints the likely errors, most
likely first, and writes their gallery (and, with --json, the record)."""
from __future__ import annotations

import argparse
from pathlib import Path

from facelab.commands.evaluate import data_folder, labelled_folder
from facelab.commands.predict import positive_int
from facelab.data.listing import hidden, system_folder
from facelab.data.sources import list_folder
from facelab.errors import UserError
from facelab.evaluation.audit import audit_images, issue_gallery, summary
from facelab.evaluation.label_issues import LabelIssues, write_label_issues

IMG_SIZE = 64  # the audit's features are computed at 64 px whatever the size; the pipeline's default img_size


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("folder", type=Path, metavar="DIR", help="a folder with one sub-folder of images per class")
    parser.add_argument("--classes", help="comma-separated class folder names (default: every sub-folder of DIR)")
    parser.add_argument("--gallery", type=Path, default=Path("label_issues.png"),
                        help="where the gallery PNG goes (default: label_issues.png here)")
    parser.add_argument("--json", type=Path, help="also write the record (given, suggested, self-confidence) here")
    parser.add_argument("--img-size", type=positive_int, default=IMG_SIZE, help="decoding size, as prepare's img_size")
    parser.add_argument("--seed", type=int, default=0, help="draws the folds")


def class_names(folder: Path, given: str | None) -> tuple[str, ...]:
    """--classes, or every sub-folder of the folder that is not hidden nor a NAS/OS system folder, sorted."""
    if given:
        return tuple(name.strip() for name in given.split(",") if name.strip())
    _, subfolders = list_folder(folder)
    names = sorted(p.name for p in subfolders if not hidden(p.name) and system_folder(p) is None)
    if len(names) < 2:
        raise UserError(f"'{folder}' has {len(names)} class folder(s) {names}; the audit needs a folder holding one "
                        f"sub-folder of images per class, at least 2 classes")
    return tuple(names)


def audit_folder(folder: Path, classes: str | None, gallery: Path, img_size: int = IMG_SIZE,
                 seed: int = 0) -> LabelIssues:
    """Audit every usable image of `folder`, write the gallery, return the record (files relative to the folder)."""
    root = data_folder(Path(folder), tuple(classes.split(",")) if classes else ())
    names = class_names(root, classes)
    images, _ = labelled_folder(root, names, img_size)
    record = audit_images(images.pixels, images.labels, names, list(images.files), seed, str(folder))
    issue_gallery(images.pixels, record, gallery)
    return record


def execute(args: argparse.Namespace) -> LabelIssues:
    record = audit_folder(args.folder, args.classes, args.gallery, args.img_size, args.seed)
    lines = summary(record)
    print(lines[0])
    for issue in record.results.issues:
        print(f"{issue.file}: {issue.given} -> {issue.suggested} (self-confidence {issue.self_confidence:.3f})")
    if args.json is not None:
        write_label_issues(args.json, record)
    print(f"gallery: {args.gallery}" + (f"; record: {args.json}" if args.json is not None else ""))
    return record
