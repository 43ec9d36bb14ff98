"""Review a change: compare the workspace's experiments with a git revision's; write review/comment.md and the base/head images it links (for a pull-request comment, or to read locally)."""
from __future__ import annotations

import argparse
import json
import shutil
import subprocess
from pathlib import Path

from facelab.cli import stage_main
from facelab.errors import UserError
from facelab.files import atomic_dir
from facelab.params import RECIPES, TASKS
from facelab.reporting.review import write_review


@stage_main
def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--base", required=True, help="git revision to compare with, e.g. origin/main or HEAD~1")
    parser.add_argument("--out", default="review", help="folder for comment.md and its images")
    args = parser.parse_args(argv)
    root = Path(".")
    if subprocess.run(["git", "rev-parse", "--verify", "-q", f"{args.base}^{{commit}}"], capture_output=True).returncode:
        raise UserError(f"--base {args.base}: not a git revision here; fetch it first (git fetch origin) or name "
                        f"another (e.g. HEAD~1)")
    diff = metrics_diff(args.base)
    with atomic_dir(args.out) as tmp:
        comment = write_review(args.base, root, tmp, [(t, r) for t in TASKS for r in RECIPES], diff)
    print(comment)
    print(f"review: {args.out}/comment.md")


def metrics_diff(base: str) -> dict:
    """`dvc metrics diff <base> --json`: {path: {key: {old, new, diff}}} for every metric that changed."""
    dvc = shutil.which("dvc") or "dvc"
    result = subprocess.run([dvc, "metrics", "diff", base, "--json"], capture_output=True, text=True)
    if result.returncode:
        raise UserError(f"dvc metrics diff {base} failed: {result.stderr.strip()[-500:]}")
    return json.loads(result.stdout or "{}")


if __name__ == "__main__":
    main()
