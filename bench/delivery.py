#!/usr/bin/env python3
"""What would make it faster: the same image delivered as gzip and as zstd, on the real node, to the first step.

For each delivery variant (the source image as it is, gzip; and `startbench images convert --to zstd` of it) and
each repetition, this removes every variant from the real node (`realnode.remove_image`: truly cold), then runs a
Benchmark with the in-process operator, `cache: both` (a cold run that downloads the image, then a warm run that
finds it), and keeps each run's phases: pull, create_start, imports, device_init, first_step and the total time
to the first step. Variants alternate within a repetition (gzip, zstd, then zstd, gzip), so a drift in the
machine's load does not favour one. Prints medians and the zstd/gzip ratios, and keeps everything as JSON under
bench/results/ (bench/keep.py).

    python3 bench/delivery.py [--image 127.0.0.1:5000/startbench-jax:slim-cpu] [--repetitions 3]

Needs `startbench cluster up` with the real node, and the image in the local registry (`startbench images build
--framework jax --variant slim --flavour cpu --push 127.0.0.1:5000`). Numbers are printed, never asserted.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import threading
import time
import uuid
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "operator"))
sys.path.insert(0, str(REPO / "bench"))

from keep import Keeper  # noqa: E402

PHASES = ("pulling", "create_start", "imports", "device_init", "first_step")


def _operator(kubeconfig: str, namespace: str):
    from startbench.runtime import config as config_module
    from startbench.runtime import handlers
    from startbench.runtime.metrics import Metrics

    os.environ["KUBECONFIG"] = kubeconfig
    memo = {"config": config_module.load({"STARTBENCH_NAMESPACES": namespace, "STARTBENCH_METRICS_PORT": "0"}),
            "metrics": Metrics()}
    ready, stop = threading.Event(), threading.Event()
    thread = handlers.run_in_thread(memo, (namespace,), ready=ready, stop=stop)
    if not ready.wait(60):
        raise SystemExit("the operator did not start in 60 s")
    return stop, thread


def _benchmark(name: str, variant: str, image: str, steps: int) -> dict:
    from startbench.localcluster import realnode
    return {"apiVersion": "startbench.dev/v1alpha1", "kind": "Benchmark", "metadata": {"name": name},
            "spec": {"images": [{"name": variant, "image": image, "framework": "jax", "variant": "slim"}],
                     "nodes": {"selector": {"matchLabels": {"startbench.dev/pool": "real"}},
                               "tolerations": [realnode.TOLERATION], "gpusPerPod": 0, "maxNodes": 1},
                     "cache": "both", "repetitions": 1, "parallelism": 1, "runTimeoutSeconds": 900,
                     "workload": {"steps": steps, "batchSize": 2, "imageSize": 64}}}


def _run(custom, core, namespace: str, name: str, body: dict) -> list[dict]:
    from startbench.core.records import read_chunks
    custom.create_namespaced_custom_object("startbench.dev", "v1alpha1", namespace, "benchmarks", body)
    deadline = time.monotonic() + 1200
    while time.monotonic() < deadline:
        status = custom.get_namespaced_custom_object("startbench.dev", "v1alpha1", namespace, "benchmarks",
                                                     name).get("status") or {}
        if status.get("phase") in ("Succeeded", "PartiallyFailed", "Failed"):
            break
        time.sleep(1)
    else:
        raise SystemExit(f"benchmark {name} did not finish in 20 minutes")
    maps = core.list_namespaced_config_map(namespace, label_selector=f"startbench.dev/benchmark={name}").items
    records = read_chunks((m.data or {}).get("records.json", "[]") for m in maps)
    custom.delete_namespaced_custom_object("startbench.dev", "v1alpha1", namespace, "benchmarks", name)
    return records


def _row(variant: str, repetition: int, record: dict) -> dict:
    phases = record["timeline"]["phases"]
    return {"variant": variant, "repetition": repetition, "cacheAsked": record.get("cacheAsked"),
            "cache": record.get("cache"), "result": record["result"], "reason": record["reason"],
            "timeToFirstStepS": None if record.get("timeToFirstStepMs") is None else record["timeToFirstStepMs"] / 1e3,
            **{f"{p}S": (phases[p]["ms"] / 1e3 if p in phases and "covers" not in phases[p] else None) for p in PHASES},
            "imageSizeBytes": (record.get("pull") or {}).get("imageSizeBytes")}


def _median(rows: list[dict], variant: str, cache: str, field: str) -> float | None:
    values = [r[field] for r in rows if r["variant"] == variant and r["cache"] == cache and r[field] is not None]
    return statistics.median(values) if values else None


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--image", default="127.0.0.1:5000/startbench-jax:slim-cpu")
    parser.add_argument("--repetitions", type=int, default=3)
    parser.add_argument("--steps", type=int, default=2)
    parser.add_argument("--zstd-level", type=int, default=3)
    args = parser.parse_args()
    keeper = Keeper("delivery")

    from kubernetes import client, config

    from startbench.images.convert import convert
    from startbench.localcluster import paths, realnode

    kubeconfig = str(paths.kubeconfig_path())
    api = config.new_client_from_config(kubeconfig)
    core, custom = client.CoreV1Api(api), client.CustomObjectsApi(api)
    tag = f"{args.image.rsplit(':', 1)[1]}-zstd{args.zstd_level}-{uuid.uuid4().hex[:6]}"
    zstd_image = f"{args.image.rsplit(':', 1)[0]}:{tag}"
    converted = convert(args.image, "zstd", zstd_image, args.zstd_level, progress=lambda m: print(m, flush=True))
    variants = {"gzip": args.image, "zstd": zstd_image}
    namespace = f"bench-delivery-{uuid.uuid4().hex[:6]}"
    core.create_namespace({"metadata": {"name": namespace}})
    stop, thread = _operator(kubeconfig, namespace)
    rows: list[dict] = []
    try:
        for rep in range(1, args.repetitions + 1):
            order = ("gzip", "zstd") if rep % 2 else ("zstd", "gzip")
            for variant in order:
                for pod in core.list_namespaced_pod(namespace).items:
                    core.delete_namespaced_pod(pod.metadata.name, namespace, grace_period_seconds=0)
                for image in variants.values():
                    realnode.remove_image(image, wait_s=300)
                    realnode.wait_unlisted(image)  # the operator's evidence must see it gone too
                name = f"{variant}-{rep}"
                records = _run(custom, core, namespace, name, _benchmark(name, variant, variants[variant], args.steps))
                for record in sorted(records, key=lambda r: r["order"]):
                    rows.append(_row(variant, rep, record))
                    r = rows[-1]
                    print(f"rep {rep} {variant:4} {r['cacheAsked']:4} ({r['cache']}): {r['result']}, first step "
                          f"{r['timeToFirstStepS']}s, pull {r['pullingS']}s, imports {r['importsS']}s", flush=True)
    finally:
        stop.set()
        thread.join(30)
        core.delete_namespace(namespace)
        for image in variants.values():
            try:
                realnode.remove_image(image, wait_s=120)
            except realnode.RealNodeError as err:
                print(f"left on the node: {err}", file=sys.stderr)
    summary: dict = {}
    for cache in ("miss", "hit"):
        for field in ("timeToFirstStepS", *(f"{p}S" for p in PHASES)):
            g, z = _median(rows, "gzip", cache, field), _median(rows, "zstd", cache, field)
            summary[f"{cache}.{field}"] = {"gzip": g, "zstd": z, "zstdOverGzip": (z / g) if g and z is not None else None}
    print("\nmedians (seconds) and zstd/gzip")
    for key, v in summary.items():
        ratio = "-" if v["zstdOverGzip"] is None else f"{v['zstdOverGzip']:.2f}"
        print(f"  {key:28} gzip {v['gzip']}  zstd {v['zstd']}  ratio {ratio}")
    keeper.keep({"image": args.image, "zstdImage": zstd_image, "zstdLevel": args.zstd_level,
                 "compressedBytes": {"gzip": converted.source_bytes, "zstd": converted.compressed_bytes},
                 "runs": rows, "medians": summary, "runtime": "containerd 1.6 (Debian) on the local real node"})
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
