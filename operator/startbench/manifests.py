"""Kubernetes objects the operator creates, as plain dicts. Pure: no client, no clock (the caller passes time).

`pod_manifest` makes one run's pod; `records_configmap` one chunk of run records (status.py makes the chunks).
Names, labels and annotations follow docs/contracts.md.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from typing import Any

from startbench import GROUP, VERSION
from startbench.planner import Run
from startbench.spec import BenchmarkSpec

CONTAINER = "workload"
RUN_UID = 1000
MANAGED_BY = ("app.kubernetes.io/managed-by", "startbench")
LABEL_BENCHMARK = f"{GROUP}/benchmark"
LABEL_RUN = f"{GROUP}/run"
LABEL_IMAGE = f"{GROUP}/image"
LABEL_CACHE = f"{GROUP}/cache"
LABEL_RECORDS = f"{GROUP}/records"
ANNOTATION_CREATED_MS = f"{GROUP}/created-ms"
ANNOTATION_NODE = f"{GROUP}/node"
ANNOTATION_REPETITION = f"{GROUP}/repetition"
ANNOTATION_AFTER = f"{GROUP}/after"
RECORDS_KEY = "records.json"
# Pull policy by the cache state asked for: a cold run makes the kubelet go to the registry even when the image is
# on the node (only a purge before the run makes it truly cold); a warm run uses the copy on the node.
PULL_POLICY = {"cold": "Always", "warm": "IfNotPresent"}
IMAGE_SIZE_SHAPE = {224: "imagenet", 64: "tiny-imagenet"}


@dataclasses.dataclass(frozen=True)
class BenchmarkRef:
    """What a child object needs to know about its Benchmark."""
    name: str
    namespace: str
    uid: str

    @classmethod
    def from_body(cls, body: Mapping[str, Any]) -> "BenchmarkRef":
        meta = body["metadata"]
        return cls(name=meta["name"], namespace=meta["namespace"], uid=meta["uid"])

    def owner_reference(self) -> dict[str, Any]:
        return {"apiVersion": f"{GROUP}/{VERSION}", "kind": "Benchmark", "name": self.name, "uid": self.uid,
                "controller": True, "blockOwnerDeletion": True}


def workload_command(spec: BenchmarkSpec, framework: str) -> tuple[list[str] | None, list[str]]:
    """(command, args) of the run container. Framework `none` keeps the image's own entry point and passes
    workload.args only: such an image has no workload, so its run ends at container start, without a report."""
    w = spec.workload
    if framework == "none":
        return None, list(w.args)
    device = "gpu" if spec.nodes.gpus_per_pod > 0 else "cpu"
    args = ["--framework", framework, "--model", w.model, "--steps", str(w.steps), "--batch-size", str(w.batch_size),
            "--precision", w.precision, "--shape", IMAGE_SIZE_SHAPE[w.image_size], "--device", device, *w.args]
    return ["python", "-m", "startbench.workload"], args


def pod_labels(benchmark: str, run: Run) -> dict[str, str]:
    return {MANAGED_BY[0]: MANAGED_BY[1], LABEL_BENCHMARK: benchmark, LABEL_RUN: run.name, LABEL_IMAGE: run.image,
            LABEL_CACHE: run.cache}


def pod_manifest(benchmark: BenchmarkRef, spec: BenchmarkSpec, run: Run, created_ms: int) -> dict[str, Any]:
    """The pod of one run. `created_ms`: the operator's epoch milliseconds just before the create call.

    The pod is pinned to its node with a required node affinity on the node's name (the scheduler still places
    it, so scheduling is measured and a full node shows as Unschedulable); `restartPolicy: Never`, so a crash
    ends the run; `activeDeadlineSeconds` bounds a started pod (the caller also times out pods that never start).
    """
    entry = spec.image(run.image)
    command, args = workload_command(spec, entry.framework)
    container: dict[str, Any] = {
        "name": CONTAINER,
        "image": entry.reference,
        "imagePullPolicy": PULL_POLICY[run.cache],
        "args": args,
        "env": [
            {"name": "STARTBENCH_BENCHMARK", "value": benchmark.name},
            {"name": "STARTBENCH_RUN", "value": run.name},
            {"name": "STARTBENCH_FRAMEWORK", "value": entry.framework},
        ],
        "terminationMessagePath": "/dev/termination-log",
        "terminationMessagePolicy": "FallbackToLogsOnError",
        "securityContext": {
            "allowPrivilegeEscalation": False,
            "capabilities": {"drop": ["ALL"]},
            "runAsNonRoot": True,
            "runAsUser": RUN_UID,
            "runAsGroup": RUN_UID,
        },
    }
    if command is not None:
        container["command"] = command
    gpus = spec.nodes.gpus_per_pod
    if gpus > 0:
        # Extended resources are requested through limits (requests default to the same value).
        container["resources"] = {"limits": {"nvidia.com/gpu": str(gpus)}}
    pod_spec: dict[str, Any] = {
        "restartPolicy": "Never",
        "activeDeadlineSeconds": spec.run_timeout_seconds,
        "terminationGracePeriodSeconds": 10,
        "automountServiceAccountToken": False,
        "enableServiceLinks": False,
        "affinity": {"nodeAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": {"nodeSelectorTerms": [
            {"matchFields": [{"key": "metadata.name", "operator": "In", "values": [run.node]}]}]}}},
        "securityContext": {
            "runAsNonRoot": True,
            "runAsUser": RUN_UID,
            "runAsGroup": RUN_UID,
            "fsGroup": RUN_UID,
            "seccompProfile": {"type": "RuntimeDefault"},
        },
        "containers": [container],
    }
    if spec.nodes.tolerations:
        pod_spec["tolerations"] = [dict(t) for t in spec.nodes.tolerations]
    if spec.image_pull_secrets:
        pod_spec["imagePullSecrets"] = [{"name": s} for s in spec.image_pull_secrets]
    annotations = {ANNOTATION_CREATED_MS: str(int(created_ms)), ANNOTATION_NODE: run.node,
                   ANNOTATION_REPETITION: str(run.repetition)}
    if run.after:
        annotations[ANNOTATION_AFTER] = run.after
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {
            "name": run.name,
            "namespace": benchmark.namespace,
            "labels": pod_labels(benchmark.name, run),
            "annotations": annotations,
            "ownerReferences": [benchmark.owner_reference()],
        },
        "spec": pod_spec,
    }


def run_selector(benchmark: str) -> str:
    """Label selector for every run pod of a benchmark (for a list or a watch)."""
    return f"{LABEL_BENCHMARK}={benchmark},{MANAGED_BY[0]}={MANAGED_BY[1]}"


def records_configmap_name(benchmark: str, index: int) -> str:
    """Name of the index-th records ConfigMap: `{benchmark}-records-{index}` (benchmark names are <= 253 chars;
    the suffix is short enough that a valid benchmark name gives a valid ConfigMap name up to index 9999)."""
    suffix = f"-records-{index}"
    return benchmark[: 253 - len(suffix)] + suffix


def records_configmap(benchmark: BenchmarkRef, index: int, chunk: str) -> dict[str, Any]:
    """A ConfigMap holding one chunk of run records (a JSON array, see status.chunk_records)."""
    return {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {
            "name": records_configmap_name(benchmark.name, index),
            "namespace": benchmark.namespace,
            "labels": {MANAGED_BY[0]: MANAGED_BY[1], LABEL_BENCHMARK: benchmark.name, LABEL_RECORDS: "true"},
            "annotations": {f"{GROUP}/chunk": str(index)},
            "ownerReferences": [benchmark.owner_reference()],
        },
        "data": {RECORDS_KEY: chunk},
    }
