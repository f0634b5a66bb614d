"""`python -m headwater_worker <command>` (console script `headwater-worker`).

Each command lives in its own module, which exposes `add_arguments(parser)` and `run(args) -> int` and is
imported only when its command is chosen. Adding a command is one line in `COMMANDS`.
"""

from __future__ import annotations

import argparse
import importlib
import sys
from dataclasses import dataclass
from types import ModuleType


@dataclass(frozen=True)
class Command:
    name: str
    module: str
    help: str


COMMANDS: tuple[Command, ...] = (
    Command(
        "compute",
        "headwater_worker.compute.command",
        "run a compute task or deliver its update (ComputeTask)",
    ),
    Command("export", "headwater_worker.export.command", "export PostgreSQL tables to gzip CSV (ExportJob)"),
    Command(
        "ingest", "headwater_worker.ingest.command", "load files or API data into PostgreSQL (Connector)"
    ),
    Command(
        "package",
        "headwater_worker.package.command",
        "clip datasets to a boundary and publish a data package (Package)",
    ),
    Command(
        "wrapper", "headwater_worker.wrapper.command", "generate and run an indicator's collector (Wrapper)"
    ),
)


def build_parser(chosen: str | None = None) -> tuple[argparse.ArgumentParser, ModuleType | None]:
    """The parser; the arguments of `chosen` (and only its module) are loaded."""
    parser = argparse.ArgumentParser(
        prog="headwater-worker", description="What runs inside Headwater's Jobs."
    )
    subcommands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    loaded: ModuleType | None = None
    for command in COMMANDS:
        sub = subcommands.add_parser(
            command.name, help=command.help, formatter_class=argparse.RawDescriptionHelpFormatter
        )
        if command.name == chosen:
            loaded = importlib.import_module(command.module)
            sub.description = loaded.__doc__
            loaded.add_arguments(sub)
    return parser, loaded


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    chosen = next((arg for arg in argv if not arg.startswith("-")), None)
    parser, module = build_parser(chosen)
    args = parser.parse_args(argv)
    assert module is not None  # argparse refused anything but a known command
    return int(module.run(args))


if __name__ == "__main__":
    sys.exit(main())
