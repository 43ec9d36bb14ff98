"""Stage scan@<task> (always runs): fingerprint the task's source files into data/sources/<task>.json, so that prepare reruns when a photo folder changes and only then."""
from __future__ import annotations

from facelab import paths
from facelab.cli import stage_args, stage_main
from facelab.data.scan import fingerprint
from facelab.files import write_json
from facelab.params import load_params


@stage_main
def main(argv: list[str] | None = None) -> None:
    args = stage_args(argv, __doc__, recipe=False)
    params = load_params(args.params)
    found = fingerprint(args.task, params.data[args.task])
    write_json(paths.source_fingerprint(args.task), found)
    print(f"[{args.task}] {found['source']}: {len(found['files'])} file(s) under {found['path']}")


if __name__ == "__main__":
    main()
