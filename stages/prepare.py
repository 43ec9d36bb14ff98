"""Stage prepare@<task>: decode the task's images once (data_seed draws generated or sampled data), drop unusable
files and duplicates, write data/prepared/<task>/ (split later, per seed, by train and evaluate) and
metrics/<task>/data.json."""
from __future__ import annotations

from facelab import paths
from facelab.cli import command_main, stage_args
from facelab.data.prepare import prepare_task
from facelab.params import load_params


@command_main
def main(argv: list[str] | None = None) -> None:
    args = stage_args(argv, __doc__, recipe=False)
    params = load_params(args.params)
    report = paths.data_counts(args.task)
    prepared = prepare_task(args.task, params.data[args.task], params.data_seed, paths.prepared(args.task), report)
    for line in prepared.lines() + [f"details: {report}"]:
        print(f"[{args.task}] {line}")


if __name__ == "__main__":
    main()
