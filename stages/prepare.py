"""Stage prepare@<task>: decode the task's images once, drop unusable files and duplicates, split, write data/prepared/<task>/ and metrics/<task>/data.json."""
from __future__ import annotations

from facelab import paths
from facelab.cli import stage_args, stage_main
from facelab.data.prepare import run
from facelab.data.prepared import summary
from facelab.files import read_json
from facelab.params import load_params


@stage_main
def main(argv: list[str] | None = None) -> None:
    args = stage_args(argv, __doc__, recipe=False)
    params = load_params(args.params)
    metrics_path = paths.data_counts(args.task)
    result = run(args.task, params.data[args.task], params.seed, paths.prepared(args.task), metrics_path)
    for split, per_class in result.items():
        print(f"[{args.task}] {split}: " + ", ".join(f"{k} {v}" for k, v in per_class.items()))
    for line in summary(read_json(metrics_path)) + [f"details: {metrics_path}"]:
        print(f"[{args.task}] {line}")


if __name__ == "__main__":
    main()
