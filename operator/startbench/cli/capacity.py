"""`startbench capacity NAME --pods P [--nodes N] [--pods-per-node K] [--registry-bandwidth BW] [--run-seconds S]`:
how long P pods of each of a Benchmark's images take to start on N nodes, cold and warm, and what the faster image
saves. Pods beyond N x K start in waves as earlier pods end: each pod holds its slot for the run duration the
benchmark measured (creation to end, less the pull) or --run-seconds, and the answer says which.

The model and its limits are in capacity.py and docs/capacity.md. Reads the Benchmark and its run records as
`startbench results` does; by default N is the number of nodes the benchmark ran on and K the pods those nodes
fit at once (their smallest allocatable nvidia.com/gpu over spec.nodes.gpusPerPod; 1 for CPU benchmarks).
"""

from __future__ import annotations

import argparse
import json
import sys

from startbench.core import capacity
from startbench.cli.kubeaccess import add_arguments, load

CACHES = ("cold", "warm", "both")


def add_parser(subparsers) -> None:
    p = subparsers.add_parser("capacity", help="estimate how long many pods of each image take to start",
                              description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_arguments(p)
    p.add_argument("--pods", type=int, required=True, help="how many pods to start at once")
    p.add_argument("--nodes", type=int, help="nodes to start them on (default: the nodes the benchmark ran on)")
    p.add_argument("--pods-per-node", type=int,
                   help="pods one node runs at once (default: from the benchmark's nodes and gpusPerPod)")
    p.add_argument("--registry-bandwidth", type=capacity.parse_bandwidth, metavar="BW",
                   help="the registry's total egress, e.g. 10Gbit/s or 1.25GB/s (default: not a limit)")
    p.add_argument("--run-seconds", type=float, metavar="S",
                   help="how long each pod runs, creation to end, when pods outnumber the slots (default: the "
                        "benchmark's measured runs, less their pull)")
    p.add_argument("--cache", choices=CACHES, default="both", help="which starts to estimate (default: both)")
    p.add_argument("--image", action="append", help="only this spec.images entry (repeatable; default: all)")
    p.add_argument("--format", choices=("text", "json"), default="text")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    loaded = load(args, "capacity")
    if loaded is None:
        return 1
    io, namespace, benchmark, records = loaded
    spec, status = benchmark.get("spec") or {}, benchmark.get("status") or {}
    ran_on = list(status.get("nodes") or [])
    images = args.image or [e["name"] for e in spec.get("images") or []]
    try:
        nodes = args.nodes if args.nodes is not None else len(ran_on)
        if nodes < 1:
            raise capacity.CapacityError(f"benchmark {args.name!r} has not run on any node yet; give --nodes")
        per_node = args.pods_per_node
        if per_node is None:
            gpus_per_pod = int((spec.get("nodes") or {}).get("gpusPerPod", 1))
            per_node = capacity.pods_per_node(io.allocatable_gpus(ran_on), gpus_per_pod)
        question = capacity.Question(args.pods, nodes, per_node, args.registry_bandwidth, args.run_seconds)
        profiles = [capacity.profile(image, records) for image in images]
        caches = ("cold", "warm") if args.cache == "both" else (args.cache,)
        estimates = [capacity.estimate(p, question, cache) for cache in caches for p in profiles
                     if not (args.cache == "both" and _missing(p, cache))]
    except capacity.CapacityError as err:
        print(f"startbench capacity: {err}", file=sys.stderr)
        return 1
    if not estimates:
        print("startbench capacity: no image has a cold or warm run to learn from", file=sys.stderr)
        return 1
    if args.format == "json":
        sys.stdout.write(json.dumps(capacity.to_dict(question, profiles, estimates), indent=2) + "\n")
        return 0
    bw = "" if question.registry_bandwidth is None else f", registry {question.registry_bandwidth / 1e6:.0f} MB/s"
    if question.run_seconds is not None:
        bw += f", runs of {question.run_seconds:g} s (--run-seconds)"
    learnt = ", ".join(f"{p.image}: {p.cold_runs} cold, {p.warm_runs} warm runs" for p in profiles)
    print(f"{args.pods} pods on {nodes} node(s), {per_node} per node{bw}; learnt from {namespace}/{args.name} "
          f"({learnt}):")
    for line in capacity.answer(question, estimates):
        print(f"  {line}")
    return 0


def _missing(p: capacity.ImageProfile, cache: str) -> bool:
    """With --cache both, a cache state the benchmark has no runs of is left out rather than an error."""
    if cache == "warm":
        return p.warm_p50_s is None
    return p.node_bandwidth is None or p.pull_bytes is None or p.rest_p50_s is None
