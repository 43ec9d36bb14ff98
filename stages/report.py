"""Stage report: read metrics/ and plots/ of the six experiments, one run per seed (params: seeds), and each task's
label audit; write reports/ (index.html, report.md, figures/) and plots/zscore/."""
from __future__ import annotations

import argparse

from facelab import paths
from facelab.cli import command_main
from facelab.params import RECIPES, TASKS, load_params
from facelab.reporting.document import write_report
from facelab.reporting.label_errors import load_audit
from facelab.reporting.results import load_experiment


@command_main
def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--out", default=str(paths.reports()))
    parser.add_argument("--zscore", default=str(paths.zscore_plots()), help="folder of the z-score image plots")
    parser.add_argument("--params", default="params.yaml")
    args = parser.parse_args(argv)
    seeds = list(load_params(args.params).seeds)
    experiments = [load_experiment(task, recipe, seeds) for task in TASKS for recipe in RECIPES]
    audits = {task: audit for task in TASKS if (audit := load_audit(task)) is not None}
    comparisons = write_report(experiments, args.out, args.zscore, audits)
    for task, sentences in comparisons.items():
        for sentence in sentences:
            print(f"[{task}] {sentence}")
    print(f"report: {args.out}/index.html and report.md ({len(experiments)} experiments, seeds "
          f"{', '.join(map(str, seeds))})")


if __name__ == "__main__":
    main()
