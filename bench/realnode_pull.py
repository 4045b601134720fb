#!/usr/bin/env python3
"""Real pulls on the local cluster's real node: cold (image removed from the node first) versus warm, per image.

For each image and repetition, a pod that runs `true` is created on real-node-0, once cold (pull policy Always
after `realnode.remove_image` of every image measured: images share layers, e.g. the framework images are built
on the base image, so removing one alone would leave its shared layers cached) and once warm (IfNotPresent).
Prints, per image:
  * the kubelet's own pull time and the image size from its Pulled event, and the throughput that makes;
  * create-to-Succeeded wall time, cold and warm, and their ratio (what a cold cache costs end to end);
  * the throughput over the pull simulator's default per-node bandwidth (125 MB/s), to calibrate it.

  python3 bench/realnode_pull.py [--images 127.0.0.1:5000/startbench/base:bookworm,...] [--repetitions 3]

Needs `startbench cluster up` (with the real node). Not part of the test suite. The table is kept under
bench/results/ (bench/keep.py: with the date, commit, machine and load average).
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
import uuid
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "operator"))

from startbench.core.kubelet_events import parse_event  # noqa: E402
from startbench.localcluster import paths, realnode  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parent))
from keep import Keeper  # noqa: E402

DEFAULT_IMAGES = "127.0.0.1:5000/startbench/base:bookworm,127.0.0.1:5000/startbench-jax:slim-cpu"
SIMULATED_BANDWIDTH = 125e6  # bytes/s: `startbench cluster up --pull-bandwidth` default


def run_pod(core, namespace: str, image: str, policy: str) -> tuple[float, object]:
    """Create-to-Succeeded seconds (client clock) and the parsed Pulled fact."""
    name = f"pull-{uuid.uuid4().hex[:8]}"
    body = {"metadata": {"name": name},
            "spec": {"restartPolicy": "Never", "nodeSelector": {"kubernetes.io/hostname": realnode.NODE_NAME},
                     "tolerations": [realnode.TOLERATION], "automountServiceAccountToken": False,
                     "containers": [{"name": "c", "image": image, "imagePullPolicy": policy,
                                     "command": ["/bin/sh", "-c", "true"]}]}}
    t0 = time.monotonic()
    core.create_namespaced_pod(namespace, body)
    while True:
        phase = core.read_namespaced_pod(name, namespace).status.phase
        if phase in ("Succeeded", "Failed"):
            break
        if time.monotonic() - t0 > 600:
            raise SystemExit(f"pod {name} ({image}) did not finish in 600s")
        time.sleep(0.05)
    seconds = time.monotonic() - t0
    if phase != "Succeeded":
        raise SystemExit(f"pod {name} ({image}) ended {phase}")
    events = [e for e in core.list_namespaced_event(namespace).items
              if e.involved_object.name == name and e.reason == "Pulled"]
    core.delete_namespaced_pod(name, namespace, grace_period_seconds=0)
    return seconds, parse_event("Pulled", events[0].message) if events else None


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--images", default=DEFAULT_IMAGES)
    parser.add_argument("--repetitions", type=int, default=3)
    args = parser.parse_args()
    keeper = Keeper("realnode_pull")
    from kubernetes import client, config

    kubeconfig = paths.kubeconfig_path()
    if realnode.ensure(kubeconfig, progress=print) is None:
        return 1
    core = client.CoreV1Api(config.new_client_from_config(str(kubeconfig)))
    namespace = f"bench-pull-{uuid.uuid4().hex[:6]}"
    core.create_namespace({"metadata": {"name": namespace}})
    time.sleep(2)  # the default ServiceAccount
    rows = []
    try:
        print(f"{'image':<48} {'size MB':>8} {'pull s':>7} {'MB/s':>7} {'vs sim':>7} {'cold s':>7} {'warm s':>7} "
              f"{'cold/warm':>9}")
        for image in args.images.split(","):
            cold, warm, pulls, sizes = [], [], [], []
            for _ in range(args.repetitions):
                for other in args.images.split(","):
                    realnode.remove_image(other)
                seconds, fact = run_pod(core, namespace, image, "Always")
                cold.append(seconds)
                if fact is not None and fact.pull_seconds:
                    pulls.append(fact.pull_seconds)
                    sizes.append(fact.image_size_bytes or 0)
                warm.append(run_pod(core, namespace, image, "IfNotPresent")[0])
            pull, size = statistics.median(pulls), statistics.median(sizes)
            rate = size / pull
            print(f"{image[-48:]:<48} {size / 1e6:8.1f} {pull:7.2f} {rate / 1e6:7.1f} "
                  f"{rate / SIMULATED_BANDWIDTH:7.2f} {statistics.median(cold):7.2f} {statistics.median(warm):7.2f} "
                  f"{statistics.median(cold) / statistics.median(warm):9.1f}")
            rows.append({"image": image, "sizeBytes": size, "pullSeconds": pull, "bytesPerSecond": rate,
                         "overSimulatedBandwidth": rate / SIMULATED_BANDWIDTH, "coldSeconds": cold,
                         "warmSeconds": warm, "pullsSeconds": pulls})
    finally:
        core.delete_namespace(namespace)
    keeper.keep({"node": realnode.NODE_NAME, "repetitions": args.repetitions,
                 "simulatedBandwidth": SIMULATED_BANDWIDTH, "images": rows})
    return 0


if __name__ == "__main__":
    sys.exit(main())
