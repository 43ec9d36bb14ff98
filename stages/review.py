"""Review a change: compare the workspace's experiments with a git revision's; write review/comment.md and the
base/head images it links (for a pull-request comment, or to read locally)."""
from __future__ import annotations

import argparse
from pathlib import Path

from facelab.cli import command_main
from facelab.params import TASKS, load_params
from facelab.reporting.review import run_review


@command_main
def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--base", required=True, help="git revision to compare with, e.g. origin/main or HEAD~1")
    parser.add_argument("--out", default="review", help="folder for comment.md and its images")
    parser.add_argument("--params", default="params.yaml")
    args = parser.parse_args(argv)
    params = load_params(args.params)
    print(run_review(args.base, Path(args.out), {task: params.data[task].split for task in TASKS}))
    print(f"review: {args.out}/comment.md")


if __name__ == "__main__":
    main()
