"""Command-line edge shared by the stages: user errors end the stage with their message, not a traceback."""
from __future__ import annotations

import argparse
import functools
import sys

from facelab.errors import UserError
from facelab.params import RECIPES, TASKS


def stage_main(main):
    """Wrap a stage's main(): a UserError prints 'error: ...' to stderr and exits with status 2."""
    @functools.wraps(main)
    def wrapper(*args, **kwargs):
        try:
            return main(*args, **kwargs)
        except UserError as error:
            print(f"error: {error}", file=sys.stderr)
            sys.exit(2)
    return wrapper


def stage_args(argv: list[str] | None, description: str, recipe: bool) -> argparse.Namespace:
    """--task (and --recipe) naming one cell of the experiment matrix, and --params."""
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("--task", required=True, choices=TASKS)
    if recipe:
        parser.add_argument("--recipe", required=True, choices=RECIPES)
    parser.add_argument("--params", default="params.yaml")
    return parser.parse_args(argv)
