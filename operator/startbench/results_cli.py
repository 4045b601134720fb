"""`startbench results NAME [--format table|json|csv]`: a Benchmark's results, read from the cluster.

Reads the Benchmark and the ConfigMaps named in its status.recordsConfigMaps (or, before the status names them,
those labelled startbench.dev/records=true for the benchmark) and prints them with results.py.
"""

from __future__ import annotations

import argparse
import sys

from startbench import GROUP, VERSION
from startbench.manifests import LABEL_BENCHMARK, LABEL_RECORDS, RECORDS_KEY
from startbench.results import FORMATS, render
from startbench.status import read_chunks


def add_parser(subparsers) -> None:
    p = subparsers.add_parser("results", help="print a Benchmark's results (table, json or csv)",
                              description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("name", help="the Benchmark's name")
    p.add_argument("-n", "--namespace", help="its namespace (default: the kubeconfig context's, else default)")
    p.add_argument("--format", choices=FORMATS, default="table", help="table for a person, json or csv for a script")
    p.add_argument("--kubeconfig", help="kubeconfig file (default: $KUBECONFIG, ~/.kube/config, or in-cluster)")
    p.set_defaults(func=run)


def api_client(kubeconfig: str | None):
    """An API client from the kubeconfig (or in-cluster), and the namespace to use when none is given."""
    from kubernetes import client, config
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
    return api, namespace


def fetch(api, namespace: str, name: str) -> tuple[dict, list[dict]]:
    """The Benchmark and its run records."""
    from kubernetes import client
    objects, core = client.CustomObjectsApi(api), client.CoreV1Api(api)
    benchmark = objects.get_namespaced_custom_object(GROUP, VERSION, namespace, "benchmarks", name)
    names = (benchmark.get("status") or {}).get("recordsConfigMaps") or []
    if names:
        maps = [core.read_namespaced_config_map(n, namespace) for n in names]
    else:
        maps = core.list_namespaced_config_map(namespace, label_selector=f"{LABEL_BENCHMARK}={name},"
                                                                          f"{LABEL_RECORDS}=true").items
    return benchmark, read_chunks((m.data or {}).get(RECORDS_KEY, "") for m in maps)


def load(args: argparse.Namespace, command: str):
    """(api client, namespace, Benchmark, records) for a command's NAME, -n and --kubeconfig; None, with the
    reason printed, when the Benchmark (or one of its records ConfigMaps) is not there."""
    from kubernetes.client.rest import ApiException
    api, default_namespace = api_client(args.kubeconfig)
    namespace = args.namespace or default_namespace
    try:
        benchmark, records = fetch(api, namespace, args.name)
    except ApiException as exc:
        if exc.status == 404:
            print(f"startbench {command}: no Benchmark {args.name!r} in namespace {namespace!r} (or one of its "
                  f"records ConfigMaps is gone); check `kubectl get sbench -n {namespace}`", file=sys.stderr)
            return None
        raise
    return api, namespace, benchmark, records


def run(args: argparse.Namespace) -> int:
    loaded = load(args, "results")
    if loaded is None:
        return 1
    _, _, benchmark, records = loaded
    sys.stdout.write(render(args.format, benchmark, records))
    return 0
