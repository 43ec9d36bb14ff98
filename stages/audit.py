"""Stage audit@<task>: k-fold out-of-sample probabilities for every prepared image, the likely label errors among
them (cleanlab), where each falls in every seed's split; writes metrics/<task>/label_issues.json,
plots/<task>/label_issues.png and data/label_drop/<task>.json (what the runs leave out of train and val: the flagged
images under data.<task>.label_issues: drop, none under report)."""
from __future__ import annotations

from facelab import paths
from facelab.cli import command_main, stage_args
from facelab.evaluation.audit import audit_task, drop_lines, summary
from facelab.params import load_params


@command_main
def main(argv: list[str] | None = None) -> None:
    args = stage_args(argv, __doc__, recipe=False)
    params = load_params(args.params)
    record = audit_task(paths.prepared(args.task), paths.label_issues(args.task),
                        paths.label_issues_gallery(args.task), paths.label_drop(args.task), list(params.seeds),
                        params.data[args.task].split, params.data[args.task].label_issues, params.data_seed)
    for line in (summary(record) + drop_lines(record)
                 + [f"details: {paths.label_issues(args.task)}"]):
        print(f"[{args.task}] {line}")


if __name__ == "__main__":
    main()
