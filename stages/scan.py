"""Stage scan@<task> (always runs): fingerprint the task's source files into data/sources/<task>.json, so that
prepare reruns when a photo folder changes and only then."""
from __future__ import annotations

from facelab import paths
from facelab.cli import command_main, stage_args
from facelab.data.scan import write_fingerprint
from facelab.params import load_params


@command_main
def main(argv: list[str] | None = None) -> None:
    args = stage_args(argv, __doc__, recipe=False)
    data = load_params(args.params).data[args.task]
    print(f"[{args.task}] {write_fingerprint(args.task, data, paths.source_fingerprint(args.task))}")


if __name__ == "__main__":
    main()
