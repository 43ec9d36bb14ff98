"""The `facelab` command, the one entry point of facelab/commands/: `facelab predict` scores image files,
`facelab evaluate` scores a labelled folder (also `python -m facelab.app`)."""
from __future__ import annotations

import argparse

from facelab.cli import command_main
from facelab.commands import evaluate, predict

COMMANDS = {"predict": (predict, "a trained model's class probabilities for image files and folders, as CSV"),
            "evaluate": (evaluate, "score a trained model on a labelled folder outside the pipeline")}


def parser() -> argparse.ArgumentParser:
    top = argparse.ArgumentParser(prog="facelab", description=__doc__)
    commands = top.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for name, (module, summary) in COMMANDS.items():
        command = commands.add_parser(name, help=summary, description=module.__doc__)
        module.add_arguments(command)
        command.set_defaults(execute=module.execute)
    return top


@command_main
def main(argv: list[str] | None = None) -> None:
    args = parser().parse_args(argv)
    args.execute(args)


if __name__ == "__main__":  # `python -m facelab.app predict ...` works like the `facelab` command
    main()
