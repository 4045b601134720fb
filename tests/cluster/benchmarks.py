"""Building and reading Benchmarks in cluster tests."""

from __future__ import annotations

import json

from startbench.core.contracts import GROUP, VERSION
from tests.cluster.helpers import wait_for

GPU_TOLERATIONS = [{"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"}]
BASE_IMAGE = "127.0.0.1:5000/startbench/base:bookworm"
TERMINAL = ("Succeeded", "PartiallyFailed", "Failed")


def benchmark(name: str, images: list[dict], *, pool: str = "gpu", max_nodes: int = 2, gpus: int = 1,
              cache: str = "both", repetitions: int = 1, parallelism: int = 4, **extra) -> dict:
    spec = {
        "images": images,
        "nodes": {"selector": {"matchLabels": {"startbench.dev/pool": pool}}, "tolerations": GPU_TOLERATIONS,
                  "gpusPerPod": gpus, "maxNodes": max_nodes},
        "cache": cache, "repetitions": repetitions, "parallelism": parallelism, **extra,
    }
    return {"apiVersion": f"{GROUP}/{VERSION}", "kind": "Benchmark", "metadata": {"name": name}, "spec": spec}


def create(custom, namespace: str, body: dict) -> dict:
    return custom.create_namespaced_custom_object(GROUP, VERSION, namespace, "benchmarks", body)


def get(custom, namespace: str, name: str) -> dict:
    return custom.get_namespaced_custom_object(GROUP, VERSION, namespace, "benchmarks", name)


def wait_finished(custom, namespace: str, name: str, timeout: float = 120) -> dict:
    return wait_for(lambda: (b := get(custom, namespace, name)).get("status", {}).get("phase") in TERMINAL and b,
                    timeout=timeout, what=f"benchmark {name} to finish")


def records(core, namespace: str, name: str) -> list[dict]:
    maps = core.list_namespaced_config_map(namespace, label_selector=f"startbench.dev/benchmark={name}")
    out = []
    for m in maps.items:
        out += json.loads((m.data or {}).get("records.json", "[]"))
    return out


def benchmark_events(core, namespace: str, name: str) -> list:
    return [e for e in core.list_namespaced_event(namespace).items
            if e.involved_object.kind == "Benchmark" and e.involved_object.name == name]
