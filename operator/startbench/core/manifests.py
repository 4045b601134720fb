"""Kubernetes objects the operator creates, as plain dicts. Pure: no client, no clock (the caller passes time).

`pod_manifest` makes one run's pod (records.py makes the records ConfigMaps).
Names, labels and annotations follow docs/contracts.md.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from typing import Any

from startbench.core.contracts import (ANNOTATION_AFTER, ANNOTATION_CREATED_MS, ANNOTATION_NODE, ANNOTATION_REPETITION,
                                         CONTAINER, GROUP, KIND, LABEL_BENCHMARK, LABEL_CACHE, LABEL_IMAGE, LABEL_RUN,
                                         MANAGED_BY, RUN_UID, VERSION)
from startbench.core.planner import Run
from startbench.core.spec import BenchmarkSpec

# Pull policy by the cache state asked for: a cold run makes the kubelet go to the registry even when the image is
# on the node (only a purge before the run makes it truly cold); a warm run uses the copy on the node.
PULL_POLICY = {"cold": "Always", "warm": "IfNotPresent"}
IMAGE_SIZE_SHAPE = {224: "imagenet", 64: "tiny-imagenet"}
# The pod's activeDeadlineSeconds is spec.runTimeoutSeconds plus this margin: the kubelet's deadline is a backstop.
# The operator ends a run runTimeoutSeconds after the pod's creation (Timeout) and deletes its pod; the kubelet,
# counting from the pod's start on the node (after scheduling), stops the pod only when the operator did not (it
# was down): DeadlineExceeded. Without the margin the two would race near the same moment.
DEADLINE_MARGIN_SECONDS = 60


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
        return {"apiVersion": f"{GROUP}/{VERSION}", "kind": KIND, "name": self.name, "uid": self.uid,
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


def pod_manifest(benchmark: BenchmarkRef, spec: BenchmarkSpec, run: Run, created_ms: int,
                 evidence: Mapping[str, str] | None = None) -> dict[str, Any]:
    """The pod of one run. `created_ms`: the operator's epoch milliseconds just before the create call;
    `evidence`: the node's cache evidence as annotations (core/cache.py's NodeEvidence.annotations()).

    The pod is pinned to its node with a required node affinity on the node's name (the scheduler still places
    it, so scheduling is measured and a full node shows as Unschedulable); `restartPolicy: Never`, so a crash
    ends the run; `activeDeadlineSeconds` is the kubelet's backstop behind the operator's own timeout (see
    DEADLINE_MARGIN_SECONDS); spec.workload.resources and the GPUs are the container's resources.
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
    resources = spec.workload.resources.to_dict()
    gpus = spec.nodes.gpus_per_pod
    if gpus > 0:
        # Extended resources are requested through limits (requests default to the same value).
        resources.setdefault("limits", {})["nvidia.com/gpu"] = str(gpus)
    if resources:
        container["resources"] = resources
    pod_spec: dict[str, Any] = {
        "restartPolicy": "Never",
        "activeDeadlineSeconds": spec.run_timeout_seconds + DEADLINE_MARGIN_SECONDS,
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
    annotations.update(evidence or {})
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
