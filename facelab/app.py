"""The `facelab` command, the one entry point of facelab/commands/: `facelab predict` scores image files,
`facelab evaluate` scores a labelled folder, `facelab audit` finds its likely label errors (also
`python -m facelab.app`)."""
from __future__ import annotations

import argparse
import sys

from facelab.cli import command_main
from facelab.commands import audit, evaluate, predict

COMMANDS = {"predict": (predict, "a trained model's class probabilities for image files and folders, as CSV"),
            "evaluate": (evaluate, "score a trained model on a labelled folder outside the pipeline"),
            "audit": (audit, "likely label errors in a labelled folder, without a trained model")}


class Parser(argparse.ArgumentParser):
    """argparse's parser, except that an argument starting with '-' that is no option is an error naming the way
    to pass it as a path: `facelab predict -face.jpg` reads '-face.jpg' as an option, then says PATH is missing."""

    def parse_known_args(self, args=None, namespace=None):
        self.given = list(sys.argv[1:] if args is None else args)
        namespace, extras = super().parse_known_args(args, namespace)
        if self.dashed(extras):
            self.error(f"unrecognized arguments: {' '.join(extras)}")
        return namespace, extras

    def error(self, message: str):
        dashed = self.dashed(getattr(self, "given", []))
        if dashed:
            message += (f"; '{dashed[0]}' starts with '-', so it reads as an option: if it is a file, put '--' "
                        f"before the paths ({self.prog} ... -- {dashed[0]}) or write ./{dashed[0]}")
        super().error(message)

    def dashed(self, arguments: list[str]) -> list[str]:
        """The arguments that look like a short option but are none of this parser's (nor a negative number)."""
        return [arg for arg in arguments if arg.startswith("-") and not arg.startswith("--") and len(arg) > 1
                and arg.split("=", 1)[0] not in self._option_string_actions
                and not self._negative_number_matcher.match(arg)]


def parser() -> argparse.ArgumentParser:
    top = Parser(prog="facelab", description=__doc__)
    commands = top.add_subparsers(dest="command", required=True, metavar="COMMAND", parser_class=Parser)
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
