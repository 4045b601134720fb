"""`startbench results NAME [--format table|json|csv]`: a Benchmark's results, read from the cluster.

Reads the Benchmark and the ConfigMaps named in its status.recordsConfigMaps (or, before the status names them,
those labelled startbench.dev/records=true for the benchmark) and prints them with core/results.py.
"""

from __future__ import annotations

import argparse
import sys

from startbench.cli.kubeaccess import add_arguments, load
from startbench.core.results import FORMATS, render


def add_parser(subparsers) -> None:
    p = subparsers.add_parser("results", help="print a Benchmark's results (table, json or csv)",
                              description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_arguments(p)
    p.add_argument("--format", choices=FORMATS, default="table", help="table for a person, json or csv for a script")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    loaded = load(args, "results")
    if loaded is None:
        return 1
    _, _, benchmark, records = loaded
    sys.stdout.write(render(args.format, benchmark, records))
    return 0
