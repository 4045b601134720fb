"""The `startbench` command: one subcommand per area, each registered by its own module."""

from __future__ import annotations

import argparse
import importlib
import sys

# (subcommand, module that defines add_parser(subparsers)). Modules are imported
# only when listed here, so a missing optional dependency breaks one subcommand,
# not the whole tool.
SUBCOMMANDS: list[tuple[str, str]] = [
    ("cluster", "startbench.cli.cluster"),
    ("images", "startbench.cli.images"),
    ("operator", "startbench.cli.operator"),
    ("compare-host", "startbench.cli.compare_host"),
    ("results", "startbench.cli.results"),
    ("capacity", "startbench.cli.capacity"),
    ("report", "startbench.cli.report"),
]


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="startbench", description=__doc__)
    subparsers = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for _name, module_name in SUBCOMMANDS:
        importlib.import_module(module_name).add_parser(subparsers)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return int(args.func(args) or 0)
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
