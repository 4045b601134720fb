"""`startbench cluster ...`: the local cluster for tests and the demo."""

from __future__ import annotations

import argparse
import json
import sys


def _bytes_per_second(text: str) -> int:
    """'125MB/s', '1Gbit/s', '125000000' -> bytes per second."""
    units = {"": 1, "b": 1, "kb": 1e3, "mb": 1e6, "gb": 1e9, "kib": 1024, "mib": 1024**2, "gib": 1024**3,
             "kbit": 125, "mbit": 125e3, "gbit": 125e6}
    raw = text.strip().lower().removesuffix("/s").replace(" ", "")
    number = raw.rstrip("abcdefghijklmnopqrstuvwxyz")
    unit = raw[len(number):]
    if unit not in units or not number:
        raise argparse.ArgumentTypeError(f"{text!r} is not a bandwidth; write e.g. 125MB/s, 1Gbit/s or 125000000")
    value = float(number) * units[unit]
    if value <= 0:
        raise argparse.ArgumentTypeError(f"bandwidth must be positive, got {text!r}")
    return int(value)


def add_parser(subparsers) -> None:
    parser = subparsers.add_parser("cluster", help="the local Kubernetes cluster for tests and the demo",
                                   description=__doc__)
    sub = parser.add_subparsers(dest="cluster_command", required=True, metavar="ACTION")
    up = sub.add_parser("up", help="build what is missing and start the cluster (idempotent)")
    up.add_argument("--gpu-nodes", type=int, default=4, help="simulated GPU nodes, 8 GPUs each (default 4)")
    up.add_argument("--cpu-nodes", type=int, default=2, help="simulated CPU nodes (default 2)")
    up.add_argument("--pull-bandwidth", type=_bytes_per_second, default=125_000_000,
                    help="how fast one simulated node pulls, alone (default 125MB/s = 1Gbit/s)")
    up.add_argument("--registry-bandwidth", type=_bytes_per_second, default=1_250_000_000,
                    help="how fast the registry serves all simulated nodes together (default 1.25GB/s)")
    up.add_argument("--no-docker", action="store_true", help="skip the Docker engine, registries and base image")
    up.add_argument("--no-build", action="store_true", help="fail instead of building missing binaries")
    up.add_argument("--no-real-node", action="store_true", help="skip the one real kubelet node (docs/realnode.md)")
    up.set_defaults(func=_up)
    down = sub.add_parser("down", help="stop every process `up` started")
    down.add_argument("--keep-data", action="store_true", help="keep etcd's data for the next `up`")
    down.add_argument("--keep-docker", action="store_true", help="leave the Docker engine and registries running")
    down.set_defaults(func=_down)
    status = sub.add_parser("status", help="each component's health")
    status.add_argument("--format", choices=("table", "json"), default="table")
    status.set_defaults(func=_status)
    kubeconfig = sub.add_parser("kubeconfig", help="print the path of the cluster's kubeconfig")
    kubeconfig.set_defaults(func=_kubeconfig)


def _up(args) -> int:
    from startbench.localcluster import cluster
    try:
        options = cluster.UpOptions(gpu_nodes=args.gpu_nodes, cpu_nodes=args.cpu_nodes,
                                    pull_bandwidth=args.pull_bandwidth, registry_bandwidth=args.registry_bandwidth,
                                    docker=not args.no_docker, build=not args.no_build,
                                    real_node=not args.no_real_node)
        cluster.up(options, progress=lambda m: print(m, flush=True))
    except (ValueError, cluster.ClusterError) as err:
        print(f"cluster up failed: {err}", file=sys.stderr)
        return 1
    return 0


def _down(args) -> int:
    from startbench.localcluster import cluster
    cluster.down(progress=lambda m: print(m, flush=True), keep_data=args.keep_data, docker=not args.keep_docker)
    left = cluster.leftover_processes()
    if left:
        print("still running after down:\n" + "\n".join(left), file=sys.stderr)
        return 1
    print("cluster down: no process left")
    return 0


def _status(args) -> int:
    from startbench.localcluster import cluster
    rows = cluster.status()
    if args.format == "json":
        print(json.dumps(rows, indent=2))
    else:
        for row in rows:
            state = "healthy" if row["healthy"] else ("absent" if row.get("optional") else "UNHEALTHY")
            pid = f"pid {row['pid']}" if row.get("pid") else ""
            print(f"{row['name']:<24} {state:<10} {pid}")
            if row["problem"]:
                print("    " + str(row["problem"]).replace("\n", "\n    "))
        if not any(r["running"] for r in rows):
            print("no local cluster runs: `startbench cluster up` starts it")
    return 0 if cluster.healthy(rows) else 1


def _kubeconfig(args) -> int:
    from startbench.localcluster import cluster
    try:
        print(cluster.kubeconfig())
    except cluster.ClusterError as err:
        print(err, file=sys.stderr)
        return 1
    return 0
