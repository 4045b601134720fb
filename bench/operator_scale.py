"""How the operator holds up at scale: 1,000 run pods over 500 simulated GPU nodes.

Creates its own pool of simulated nodes (bench-gpu-*, label startbench.dev/pool=bench) on the running local
cluster, runs the operator as a subprocess scoped to its own namespace, applies one Benchmark of
500 nodes x 2 repetitions (cold), and prints the operator's CPU seconds per pod, its peak memory, the wall
time, and pods lost (runs planned but not recorded, or recorded twice) and orphan pods, which must be 0.
Everything it created is deleted at the end.

    python3 bench/operator_scale.py [--nodes 500] [--repetitions 2] [--mode fanOut|sequential]

Needs `startbench cluster up` first. Numbers are for this machine at this moment: they are printed, never
asserted.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
import uuid
from pathlib import Path

from kubernetes import client, config

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "operator"))

from startbench.localcluster import nodes as simnodes  # noqa: E402
from startbench.localcluster import paths  # noqa: E402

TICKS = os.sysconf("SC_CLK_TCK")


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / TICKS  # utime + stime


def peak_rss_mib(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--nodes", type=int, default=500)
    parser.add_argument("--repetitions", type=int, default=2)
    parser.add_argument("--mode", choices=("fanOut", "sequential"), default="fanOut")
    parser.add_argument("--timeout", type=float, default=1200)
    args = parser.parse_args()

    kubeconfig = str(paths.kubeconfig_path())
    api = config.new_client_from_config(kubeconfig)
    core, custom = client.CoreV1Api(api), client.CustomObjectsApi(api)
    namespace = f"bench-scale-{uuid.uuid4().hex[:6]}"
    pool = simnodes.NodePool("bench-gpu", args.nodes, gpus=8)
    manifests = simnodes.manifests([pool])
    for m in manifests:
        m["metadata"]["labels"]["startbench.dev/pool"] = "bench"
    print(f"creating {len(manifests)} simulated GPU nodes", flush=True)
    for m in manifests:
        try:
            core.create_node(m)
        except client.exceptions.ApiException as err:
            if err.status != 409:
                raise
    core.create_namespace({"metadata": {"name": namespace}})
    while not core.list_namespaced_service_account(namespace, field_selector="metadata.name=default").items:
        time.sleep(0.2)
    while sum(1 for n in core.list_node(label_selector="startbench.dev/pool=bench").items
              if any(c.type == "Ready" and c.status == "True" for c in n.status.conditions or [])) < args.nodes:
        time.sleep(1)

    env = {**os.environ, "KUBECONFIG": kubeconfig, "STARTBENCH_NAMESPACES": namespace,
           "STARTBENCH_METRICS_PORT": "0", "PYTHONPATH": str(REPO / "operator"), "STARTBENCH_LOG_LEVEL": "WARNING"}
    log = open(f"/tmp/{namespace}-operator.log", "wb")
    operator = subprocess.Popen([sys.executable, "-m", "startbench", "operator", "--liveness", ""], env=env,
                                stdout=log, stderr=subprocess.STDOUT)
    time.sleep(3)
    cpu_before = cpu_seconds(operator.pid)
    runs = args.nodes * args.repetitions
    body = {"apiVersion": "startbench.dev/v1alpha1", "kind": "Benchmark", "metadata": {"name": "scale"},
            "spec": {"images": [{"name": "base", "image": "127.0.0.1:5000/startbench/base:bookworm",
                                 "framework": "pytorch", "variant": "naive"}],
                     "nodes": {"selector": {"matchLabels": {"startbench.dev/pool": "bench"}},
                               "tolerations": [{"key": "nvidia.com/gpu", "operator": "Exists"}],
                               "gpusPerPod": 1, "maxNodes": args.nodes},
                     "cache": "cold", "repetitions": args.repetitions, "mode": args.mode,
                     "parallelism": args.nodes, "runTimeoutSeconds": 900}}
    started = time.monotonic()
    custom.create_namespaced_custom_object("startbench.dev", "v1alpha1", namespace, "benchmarks", body)
    status: dict = {}
    try:
        while time.monotonic() - started < args.timeout:
            status = custom.get_namespaced_custom_object("startbench.dev", "v1alpha1", namespace, "benchmarks",
                                                         "scale").get("status", {})
            if status.get("phase") in ("Succeeded", "PartiallyFailed", "Failed"):
                break
            print(f"  {time.monotonic() - started:6.0f}s  {status.get('phase')}  {status.get('progress')}", flush=True)
            time.sleep(5)
        wall = time.monotonic() - started
        cpu = cpu_seconds(operator.pid) - cpu_before
        peak = peak_rss_mib(operator.pid)
        maps = core.list_namespaced_config_map(namespace, label_selector="startbench.dev/benchmark=scale")
        records = [r for m in maps.items for r in json.loads((m.data or {}).get("records.json", "[]"))]
        names = [r["name"] for r in records]
        leftover = core.list_namespaced_pod(namespace).items
    finally:
        operator.terminate()
        operator.wait(30)
    print()
    print(f"benchmark phase          {status.get('phase')}  ({status.get('progress')})")
    print(f"runs planned             {runs}")
    print(f"runs recorded            {len(set(names))}  (records: {len(names)})")
    print(f"pods lost                {runs - len(set(names)) + (len(names) - len(set(names)))}")
    print(f"orphan pods              {sum(1 for p in leftover if p.metadata.name not in set(names))}")
    print(f"wall time                {wall:.1f}s")
    print(f"operator CPU             {cpu:.1f}s  = {cpu / runs * 1000:.1f} ms per pod")
    print(f"operator peak memory     {peak:.0f} MiB")
    for rep in sorted({r["repetition"] for r in records}):
        wave = [r for r in records if r["repetition"] == rep]
        created = [r["createdMs"] for r in wave]
        pulls = sorted((r.get("pull") or {}).get("seconds", 0.0) for r in wave)
        if pulls:
            print(f"wave {rep}: {len(wave)} pods created within {(max(created) - min(created)) / 1000:.1f}s; "
                  f"pull p50 {pulls[len(pulls) // 2]:.2f}s, max {pulls[-1]:.2f}s")
    print(f"record ConfigMaps        {len(maps.items)}")
    core.delete_namespace(namespace)
    deadline = time.monotonic() + 120
    while core.list_namespace(field_selector=f"metadata.name={namespace}").items and time.monotonic() < deadline:
        # The operator is gone: release the Benchmark's finalizer so the namespace can go.
        for b in custom.list_namespaced_custom_object("startbench.dev", "v1alpha1", namespace, "benchmarks")["items"]:
            custom.patch_namespaced_custom_object("startbench.dev", "v1alpha1", namespace, "benchmarks",
                                                  b["metadata"]["name"], {"metadata": {"finalizers": []}})
        time.sleep(2)
    for m in manifests:
        core.delete_node(m["metadata"]["name"])
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
