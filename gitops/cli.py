"""The ``bodywork`` command: one subcommand per module, expected failures as exit code 1."""

from __future__ import annotations

import argparse
import importlib
import logging
import sys
from collections.abc import Sequence
from importlib.metadata import entry_points
from types import ModuleType

from runner.errors import FatalError

# Each module has add_parser(subparsers) and run(args) -> int; the order is the order of --help.
_COMMAND_MODULES = (
    "runner.commands.run",
    "runner.commands.validate",
    "runner.commands.migrate",
    "runner.commands.services",
    "runner.commands.secrets",
    "runner.commands.deployments",
    "runner.commands.cache",
    "gitops.commands.serve",
    "gitops.commands.schedules",
)


# Packages above gitops (chatops) add subcommands through this entry point group, each naming a module
# like those above; gitops never imports them by name.
COMMAND_ENTRY_POINTS = "bodywork_gitops.commands"


def _available_commands() -> list[ModuleType]:
    modules = []
    for name in _COMMAND_MODULES:
        try:
            modules.append(importlib.import_module(name))
        except ModuleNotFoundError as error:
            if error.name != name:  # a real missing dependency, not a command still to be written
                raise
    for point in sorted(entry_points(group=COMMAND_ENTRY_POINTS), key=lambda p: p.name):
        modules.append(point.load())
    return modules


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="bodywork", description="Run Bodywork pipelines locally, on Kubernetes, or on git push."
    )
    parser.add_argument("--verbose", "-v", action="store_true", help="log debug details")
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for module in _available_commands():
        sub = module.add_parser(subparsers)
        sub.set_defaults(handler=module.run)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.WARNING,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    try:
        code: int = args.handler(args)
    except FatalError as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    except Exception as error:  # a bug: a message, not a traceback (--verbose logs where it was)
        logging.getLogger("bodywork").debug("unexpected error", exc_info=True)
        print(
            f"error: unexpected {type(error).__name__}: {error}\nThis is a bug of bodywork; please "
            "report it with the output of the same command run with --verbose.",
            file=sys.stderr,
        )
        return 1
    return code


if __name__ == "__main__":
    sys.exit(main())
