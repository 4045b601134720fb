"""How the commands that read a cluster reach it: a ClusterIO from the kubeconfig (or in-cluster), the namespace
to use, and a Benchmark with its run records, with one message for a Benchmark that is not there."""

from __future__ import annotations

import argparse
import sys
from typing import Any


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """NAME, -n and --kubeconfig: the arguments of every command that reads one Benchmark."""
    parser.add_argument("name", help="the Benchmark's name")
    parser.add_argument("-n", "--namespace", help="its namespace (default: the kubeconfig context's, else default)")
    parser.add_argument("--kubeconfig", help="kubeconfig file (default: $KUBECONFIG, ~/.kube/config, or in-cluster)")


def connect(kubeconfig: str | None):
    """(ClusterIO, the namespace to use when none is given) from the kubeconfig, or in-cluster."""
    from kubernetes import client, config

    from startbench.runtime.kube import ClusterIO
    try:
        api = config.new_client_from_config(config_file=kubeconfig)
        _, context = config.list_kube_config_contexts(config_file=kubeconfig)
        namespace = (context or {}).get("context", {}).get("namespace") or "default"
    except (config.ConfigException, FileNotFoundError, TypeError) as err:
        if kubeconfig:
            raise SystemExit(f"startbench: cannot use the kubeconfig {kubeconfig}: {err}") from None
        try:
            config.load_incluster_config()
            namespace = open("/var/run/secrets/kubernetes.io/serviceaccount/namespace").read().strip()
        except (config.ConfigException, OSError):
            raise SystemExit("startbench: no kubeconfig found and not running in a cluster; set KUBECONFIG or "
                             "pass --kubeconfig") from None
        api = client.ApiClient()
    return ClusterIO(api), namespace


def read_benchmark(io, namespace: str, name: str) -> tuple[dict, list[dict]] | None:
    """(Benchmark, records) through the ClusterIO; None when the Benchmark (or one of its records ConfigMaps) is
    not there. Commands that poll (`results --watch`) call it again and again."""
    from kubernetes.client.rest import ApiException

    from startbench.core.records import read_chunks
    benchmark = io.get_benchmark(namespace, name)
    if benchmark is None:
        return None
    names = (benchmark.get("status") or {}).get("recordsConfigMaps") or []
    try:
        chunks = io.read_records(namespace, name, names)
    except ApiException as exc:
        if exc.status == 404:
            return None
        raise
    return benchmark, read_chunks(chunks)


def not_found(command: str, namespace: str, name: str) -> str:
    return (f"startbench {command}: no Benchmark {name!r} in namespace {namespace!r} (or one of its records "
            f"ConfigMaps is gone); check `kubectl get sbench -n {namespace}`")


def load(args: argparse.Namespace, command: str) -> tuple[Any, str, dict, list[dict]] | None:
    """(ClusterIO, namespace, Benchmark, records) for a command's NAME, -n and --kubeconfig; None, with the
    reason printed, when the Benchmark (or one of its records ConfigMaps) is not there."""
    io, default_namespace = connect(args.kubeconfig)
    namespace = args.namespace or default_namespace
    found = read_benchmark(io, namespace, args.name)
    if found is None:
        print(not_found(command, namespace, args.name), file=sys.stderr)
        return None
    return io, namespace, *found
