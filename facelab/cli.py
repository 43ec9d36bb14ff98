"""Command-line edge shared by the stages and the `facelab` command: user errors end them with their message, not a
traceback."""
from __future__ import annotations

import argparse
import errno
import functools
import sys

from facelab.errors import UserError
from facelab.params import RECIPES, TASKS

# What to do about an environment error that can hit any write: the disk, the file system, permissions.
ENVIRONMENT_FIXES = {
    errno.ENOSPC: "free space on that disk (or move the repository or its DVC cache to a larger one) and run again",
    errno.EDQUOT: "free space within your disk quota and run again",
    errno.EROFS: "the file system is mounted read-only; run from a writable copy of the repository",
    errno.EACCES: "give this user write permission to that folder (or run as its owner)",
    errno.EPERM: "give this user write permission to that folder (or run as its owner)",
}


def command_main(main):
    """Wrap the main() of a stage or of the `facelab` command: a UserError, or a full disk, read-only file system or
    denied permission while reading or writing, prints one 'error: ...' line to stderr and exits with status 1."""
    @functools.wraps(main)
    def wrapper(*args, **kwargs):
        try:
            return main(*args, **kwargs)
        except UserError as error:
            print(f"error: {error}", file=sys.stderr)
            sys.exit(1)
        except OSError as error:
            if error.errno not in ENVIRONMENT_FIXES:
                raise
            where = f"'{error.filename}'" if error.filename else "a file"
            print(f"error: {where}: {error.strerror or error}; {ENVIRONMENT_FIXES[error.errno]}. Outputs are written "
                  f"to temporary names and renamed in at the end: none was left half-written", file=sys.stderr)
            sys.exit(1)
    return wrapper


def stage_args(argv: list[str] | None, description: str, recipe: bool, seed: bool = False) -> argparse.Namespace:
    """--task (and --recipe, and --seed: one of params' seeds, from dvc.yaml's matrix) naming one cell of the
    experiment matrix, and --params."""
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("--task", required=True, choices=TASKS)
    if recipe:
        parser.add_argument("--recipe", required=True, choices=RECIPES)
    if seed:
        parser.add_argument("--seed", required=True, type=int, help="the run's seed: its split, initialisation, "
                            "augmentation draws and batch order")
    parser.add_argument("--params", default="params.yaml")
    return parser.parse_args(argv)
