"""In-memory stand-ins for the operator's outside world, for unit tests of the runtime without a cluster.

- `FakeClusterIO`: every public method of runtime.kube.ClusterIO (test_fakes.py keeps the signatures equal),
  over dicts shaped as the API returns them, recording each call so a test can count them.
- `FakeClock`: the operator's clock in epoch milliseconds, moved only by the test.
- `FakeKubelet`: what the scheduler, the kubelet and the watches would do to the pods FakeClusterIO holds,
  delivered to a real Observer as pod updates and events stamped with the FakeClock.
"""

from __future__ import annotations

import copy
import dataclasses
import itertools
import threading
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from kubernetes.client.rest import ApiException

from startbench.core.contracts import (CONTAINER, LABEL_BENCHMARK, LABEL_RECORDS, RECORDS_KEY,
                                       SIMULATED_NODE_ANNOTATION)
from startbench.core.manifests import BenchmarkRef
from startbench.core.records import read_chunks, records_configmap
from startbench.runtime.observer import Observer

T0 = 1_764_000_000_000.0  # 2025-11-24T16:00:00Z


def _not_found(what: str) -> ApiException:
    err = ApiException(status=404, reason="Not Found")
    err.body = f'{{"message": "{what} not found"}}'
    return err


def merge_patch(target: dict[str, Any], patch: Mapping[str, Any]) -> dict[str, Any]:
    """JSON merge patch (RFC 7386), as the API server applies a status patch to a custom object."""
    for key, value in patch.items():
        if value is None:
            target.pop(key, None)
        elif isinstance(value, Mapping):
            base = target.get(key)
            target[key] = merge_patch(base if isinstance(base, dict) else {}, value)
        else:
            target[key] = copy.deepcopy(value)
    return target


def make_node(name: str, labels: Mapping[str, str] | None = None, gpus: int = 1, ready: bool = True,
              simulated: bool = False, annotations: Mapping[str, str] | None = None,
              unschedulable: bool = False, taints: Sequence[Mapping[str, str]] = (),
              images: Sequence[Mapping[str, Any]] = ()) -> dict[str, Any]:
    """A node as `list_node` returns it (camelCase, after sanitize_for_serialization). `images`: its
    status.images, each {"names": [...], "sizeBytes": n}."""
    notes = dict(annotations or {})
    if simulated:
        notes[SIMULATED_NODE_ANNOTATION[0]] = SIMULATED_NODE_ANNOTATION[1]
    spec: dict[str, Any] = {}
    if unschedulable:
        spec["unschedulable"] = True
    if taints:
        spec["taints"] = [dict(t) for t in taints]
    return {
        "metadata": {"name": name, "labels": dict(labels or {}), "annotations": notes, "resourceVersion": "1"},
        "spec": spec,
        "status": {"allocatable": {"nvidia.com/gpu": str(gpus)},
                   "conditions": [{"type": "Ready", "status": "True" if ready else "False"}],
                   "images": [dict(i) for i in images]},
    }


class FakeClock:
    """Epoch milliseconds that move only when the test says; call it like observer.now_ms."""

    def __init__(self, start_ms: float = T0):
        self.ms = float(start_ms)

    def __call__(self) -> float:
        return self.ms

    def advance(self, ms: float = 0.0, *, s: float = 0.0) -> float:
        self.ms += ms + s * 1000.0
        return self.ms


@dataclasses.dataclass
class Call:
    method: str
    args: dict[str, Any]


class FakeClusterIO:
    """ClusterIO over in-memory state. Public attributes are the state a test sets up and inspects:

    nodes            name -> node dict (make_node); node_annotations/patch_node_annotations keep resourceVersion
    pods             (namespace, name) -> pod dict: the manifest plus uid, creationTimestamp and status
    created          (namespace, name) of every pod actually created, in order (a repeat create is not one)
    deleted          (namespace, name) of every pod deleted, in order
    configmaps       (namespace, name) -> ConfigMap dict (the records)
    benchmarks       (namespace, name) -> Benchmark dict; patch_status merges into its status
    events           dicts with namespace, name, type, reason, message
    secrets          (namespace, name) -> Secret dict (data base64-encoded, as the API gives it)
    refusals         run (pod) name -> the refusal create_pod returns for it instead of creating it
    purge_agents     (namespace, node) -> running cache-purge agent pod names
    exec_results     (rc, stdout, stderr) answers of exec_in_pod, taken in order ((0, "", "") once empty)
    patch_conflicts  how many patch_node_annotations calls answer False (a concurrent change) before one lands
    calls            every call, in order; `count(method)` counts them
    """

    def __init__(self, nodes: Iterable[Mapping[str, Any]] = ()):
        self.nodes: dict[str, dict[str, Any]] = {}
        for node in nodes:
            self.add_node(node)
        self.pods: dict[tuple[str, str], dict[str, Any]] = {}
        self.created: list[tuple[str, str]] = []
        self.deleted: list[tuple[str, str]] = []
        self.configmaps: dict[tuple[str, str], dict[str, Any]] = {}
        self.benchmarks: dict[tuple[str, str], dict[str, Any]] = {}
        self.events: list[dict[str, str]] = []
        self.secrets: dict[tuple[str, str], dict[str, Any]] = {}
        self.refusals: dict[str, str] = {}
        self.purge_agents: dict[tuple[str, str], list[str]] = {}
        self.configz: dict[str, dict[str, Any]] = {}  # node -> its kubelet's /configz document (absent: 403)
        self.exec_results: list[tuple[int, str, str]] = []
        self.patch_conflicts = 0
        self.calls: list[Call] = []
        self._uids = itertools.count(1)
        self._lock = threading.Lock()  # the reconciler creates pods from a thread pool

    # --- test helpers
    def add_node(self, node: Mapping[str, Any]) -> None:
        self.nodes[node["metadata"]["name"]] = copy.deepcopy(dict(node))

    def add_benchmark(self, body: Mapping[str, Any]) -> dict[str, Any]:
        body = copy.deepcopy(dict(body))
        body.setdefault("status", {})
        self.benchmarks[(body["metadata"]["namespace"], body["metadata"]["name"])] = body
        return body

    def count(self, method: str) -> int:
        return sum(1 for c in self.calls if c.method == method)

    def calls_to(self, method: str) -> list[dict[str, Any]]:
        return [c.args for c in self.calls if c.method == method]

    def records(self, namespace: str, benchmark: str) -> list[dict[str, Any]]:
        """The run records its ConfigMaps hold now, in plan order."""
        return read_chunks(self.read_records(namespace, benchmark))

    def created_names(self, namespace: str | None = None) -> list[str]:
        return [name for ns, name in self.created if namespace in (None, ns)]

    def _call(self, method: str, **args: Any) -> None:
        with self._lock:
            self.calls.append(Call(method, args))

    # --- nodes
    def list_nodes(self) -> list[dict[str, Any]]:
        self._call("list_nodes")
        return copy.deepcopy(list(self.nodes.values()))

    def node_metadata(self, name: str) -> tuple[dict[str, str], dict[str, str]]:
        self._call("node_metadata", name=name)
        node = self.nodes.get(name)
        if node is None:
            return {}, {}
        meta = node["metadata"]
        return dict(meta.get("labels") or {}), dict(meta.get("annotations") or {})

    def kubelet_configz(self, name: str) -> tuple[dict[str, Any] | None, str | None]:
        self._call("kubelet_configz", name=name)
        if name in self.configz:
            return copy.deepcopy(self.configz[name]), None
        return None, "403 Forbidden; grant `get nodes/proxy` to record it"

    def node_images(self, name: str) -> list[dict[str, Any]] | None:
        self._call("node_images", name=name)
        node = self.nodes.get(name)
        if node is None:
            return None
        return [{"names": list(i.get("names") or []), "sizeBytes": i.get("sizeBytes")}
                for i in node["status"].get("images") or []]

    def node_annotations(self, name: str) -> tuple[dict[str, str], str]:
        self._call("node_annotations", name=name)
        node = self.nodes.get(name)
        if node is None:
            raise _not_found(f'nodes "{name}"')
        return dict(node["metadata"].get("annotations") or {}), node["metadata"]["resourceVersion"]

    def patch_node_annotations(self, name: str, annotations: Mapping[str, str], resource_version: str) -> bool:
        self._call("patch_node_annotations", name=name, annotations=dict(annotations),
                   resource_version=resource_version)
        node = self.nodes.get(name)
        if node is None:
            raise _not_found(f'nodes "{name}"')
        meta = node["metadata"]
        if self.patch_conflicts > 0:  # someone else changed the node since it was read
            self.patch_conflicts -= 1
            meta["resourceVersion"] = str(int(meta["resourceVersion"]) + 1)
            return False
        if meta["resourceVersion"] != resource_version:
            return False
        meta.setdefault("annotations", {}).update(annotations)
        meta["resourceVersion"] = str(int(meta["resourceVersion"]) + 1)
        return True

    def allocatable_gpus(self, names: Sequence[str]) -> list[int]:
        self._call("allocatable_gpus", names=list(names))
        return [int(self.nodes[n]["status"]["allocatable"].get("nvidia.com/gpu", "0")) for n in names
                if n in self.nodes]

    # --- pods
    def create_pod(self, namespace: str, manifest: Mapping[str, Any]) -> str | None:
        name = manifest["metadata"]["name"]
        self._call("create_pod", namespace=namespace, name=name, manifest=copy.deepcopy(dict(manifest)))
        if name in self.refusals:
            return self.refusals[name]
        with self._lock:
            if (namespace, name) in self.pods:
                return None  # 409: names are deterministic, the run's pod is already there
            pod = copy.deepcopy(dict(manifest))
            pod["metadata"]["namespace"] = namespace
            pod["metadata"]["uid"] = f"uid-{next(self._uids)}"
            pod["status"] = {"phase": "Pending"}
            self.pods[(namespace, name)] = pod
            self.created.append((namespace, name))
        return None

    def delete_pod(self, namespace: str, name: str) -> None:
        self._call("delete_pod", namespace=namespace, name=name)
        if self.pods.pop((namespace, name), None) is not None:
            self.deleted.append((namespace, name))

    def annotate_pod(self, namespace: str, name: str, annotations: Mapping[str, str]) -> None:
        self._call("annotate_pod", namespace=namespace, name=name, annotations=dict(annotations))
        pod = self.pods.get((namespace, name))
        if pod is not None:
            pod["metadata"].setdefault("annotations", {}).update(annotations)

    def list_run_pods(self, namespace: str, benchmark: str) -> list[dict[str, Any]]:
        self._call("list_run_pods", namespace=namespace, benchmark=benchmark)
        return [copy.deepcopy(pod) for (ns, _), pod in sorted(self.pods.items())
                if ns == namespace and (pod["metadata"].get("labels") or {}).get(LABEL_BENCHMARK) == benchmark]

    def running_pods_on_node(self, namespace: str, selector: str, node: str) -> list[str]:
        self._call("running_pods_on_node", namespace=namespace, selector=selector, node=node)
        return list(self.purge_agents.get((namespace, node), []))

    def exec_in_pod(self, namespace: str, pod: str, container: str, command: Sequence[str],
                    timeout_s: float) -> tuple[int, str, str]:
        self._call("exec_in_pod", namespace=namespace, pod=pod, container=container, command=list(command),
                   timeout_s=timeout_s)
        return self.exec_results.pop(0) if self.exec_results else (0, "", "")

    # --- run records
    def read_records(self, namespace: str, benchmark: str, names: Sequence[str] = ()) -> list[str]:
        self._call("read_records", namespace=namespace, benchmark=benchmark, names=list(names))
        if names:
            missing = [n for n in names if (namespace, n) not in self.configmaps]
            if missing:
                raise _not_found(f'configmaps "{missing[0]}"')
            maps = [self.configmaps[(namespace, n)] for n in names]
        else:
            maps = [m for (ns, _), m in sorted(self.configmaps.items()) if ns == namespace
                    and m["metadata"]["labels"].get(LABEL_BENCHMARK) == benchmark
                    and m["metadata"]["labels"].get(LABEL_RECORDS) == "true"]
        return [(m.get("data") or {}).get(RECORDS_KEY, "[]") for m in maps]

    def write_records(self, ref: BenchmarkRef, chunks: Sequence[str], previous: Sequence[str]) -> list[str]:
        self._call("write_records", ref=ref, chunks=list(chunks), previous=list(previous))
        names = []
        for index, chunk in enumerate(chunks):
            body = records_configmap(ref, index, chunk)
            names.append(body["metadata"]["name"])
            if index < len(previous) and previous[index] == chunk:
                continue
            self.configmaps[(ref.namespace, body["metadata"]["name"])] = body
        return names

    def read_secret(self, namespace: str, name: str) -> dict[str, Any]:
        self._call("read_secret", namespace=namespace, name=name)
        secret = self.secrets.get((namespace, name))
        if secret is None:
            raise _not_found(f'secrets "{name}"')
        return copy.deepcopy(secret)

    # --- the Benchmark
    def patch_status(self, ref: BenchmarkRef, status: Mapping[str, Any]) -> None:
        self._call("patch_status", ref=ref, status=copy.deepcopy(dict(status)))
        body = self.benchmarks.get((ref.namespace, ref.name))
        if body is None:
            raise _not_found(f'benchmarks.startbench.dev "{ref.name}"')
        merge_patch(body.setdefault("status", {}), status)

    def get_benchmark(self, namespace: str, name: str) -> dict[str, Any] | None:
        self._call("get_benchmark", namespace=namespace, name=name)
        body = self.benchmarks.get((namespace, name))
        return None if body is None else copy.deepcopy(body)

    def event(self, ref: BenchmarkRef, type_: str, reason: str, message: str) -> None:
        self._call("event", ref=ref, type_=type_, reason=reason, message=message)
        self.events.append({"namespace": ref.namespace, "name": ref.name, "type": type_, "reason": reason,
                            "message": message[:1024]})


# --- the scheduler, the kubelet and the watches ---------------------------------------------------------------

@dataclasses.dataclass(frozen=True)
class Timing:
    """When each thing happens, in ms after the kubelet is asked to run a pod (see FakeKubelet.run)."""
    scheduled: float = 500.0
    pulling: float = 600.0
    pulled: float = 2600.0       # a pull of (pulled - pulling) ms; a hit is reported at `pulling` instead
    running: float = 2900.0      # the pod update that shows the container running
    process_start: float = 2850.0
    framework_imported: float = 4000.0
    device_ready: float = 4500.0
    first_step: float = 6000.0
    steady_end: float = 7000.0
    terminated: float = 7500.0


def workload_report(start_ms: float, timing: Timing = Timing(), ok: bool = True, error: str | None = None,
                    framework: str = "pytorch") -> str:
    """The in-pod report a workload writes to its termination message, with marks `timing` after `start_ms`."""
    from startbench.workload.report import build_report, encode_report
    marks = {"process_start": timing.process_start, "interpreter_ready": timing.running,
             "framework_imported": timing.framework_imported, "device_ready": timing.device_ready,
             "model_built": timing.device_ready + 100, "data_ready": timing.device_ready + 200,
             "first_step": timing.first_step, "steady_end": timing.steady_end}
    if not ok:  # stopped in device init
        marks = {k: v for k, v in marks.items() if k in ("process_start", "interpreter_ready", "framework_imported")}
    doc = build_report(framework=framework, model="resnet18", marks_ms={k: start_ms + v for k, v in marks.items()},
                       device={"kind": "gpu", "name": "NVIDIA H100", "count": 1},
                       metrics={"samples_per_s": 250.0, "tflops": 12.5, "mfu": 0.2, "gpu_util_mean": 80.0},
                       error=error)
    return encode_report(doc)


class FakeKubelet:
    """Moves the pods of a FakeClusterIO through their lives and tells an Observer, as the pod and event watches
    would: each change updates the pod in `io.pods` (so a re-listing sees it) and is delivered at `clock()`."""

    def __init__(self, io: FakeClusterIO, observer: Observer, clock: FakeClock):
        self.io, self.observer, self.clock = io, observer, clock
        self.last: dict[tuple[str, str], dict[str, Any]] = {}  # each pod as the watch last delivered it
        self.gone: set[tuple[str, str]] = set()

    # --- the watches
    def sync(self) -> list[str]:
        """Deliver what the watches have not yet: ADDED for new pods, DELETED for deleted ones. Returns the
        names of the pods just added."""
        added = []
        for key, pod in list(self.io.pods.items()):
            if key not in self.last:
                self._deliver("ADDED", pod)
                added.append(key[1])
        for key in self.io.deleted:
            if key in self.last and key not in self.gone:
                self.gone.add(key)
                self.observer.on_pod("DELETED", copy.deepcopy(self.last[key]), self.clock())
        return added

    def relist(self, observer: Observer) -> None:
        """A restarted operator's first listing of the pods (Kopf delivers it with type None)."""
        self.observer = observer
        for pod in self.io.pods.values():
            self._deliver(None, pod)

    def _deliver(self, type_: str | None, pod: Mapping[str, Any]) -> None:
        meta = pod["metadata"]
        self.last[(meta["namespace"], meta["name"])] = copy.deepcopy(dict(pod))
        self.observer.on_pod(type_, copy.deepcopy(dict(pod)), self.clock())

    # --- one pod's life
    def pod(self, name: str, namespace: str = "ns") -> dict[str, Any]:
        return self.io.pods[(namespace, name)]

    def node_of(self, name: str, namespace: str = "ns") -> str:
        terms = self.pod(name, namespace)["spec"]["affinity"]["nodeAffinity"][
            "requiredDuringSchedulingIgnoredDuringExecution"]["nodeSelectorTerms"]
        return terms[0]["matchFields"][0]["values"][0]

    def image_of(self, name: str, namespace: str = "ns") -> str:
        return self.pod(name, namespace)["spec"]["containers"][0]["image"]

    def _update(self, name: str, namespace: str, change) -> None:
        pod = self.pod(name, namespace)
        change(pod)
        self._deliver("MODIFIED", pod)

    def _event(self, name: str, namespace: str, reason: str, message: str) -> None:
        pod = self.pod(name, namespace)
        self.observer.on_event({"kind": "Pod", "namespace": namespace, "name": name, "uid": pod["metadata"]["uid"]},
                               reason, message, self.clock())

    def schedule(self, name: str, namespace: str = "ns") -> None:
        node = self.node_of(name, namespace)

        def bind(pod):
            pod["spec"]["nodeName"] = node
            pod["status"]["conditions"] = [{"type": "PodScheduled", "status": "True"}]
        self._update(name, namespace, bind)
        self._event(name, namespace, "Scheduled", f"Successfully assigned {namespace}/{name} to {node}")

    def unschedulable(self, name: str, namespace: str = "ns", message: str = "0/3 nodes are available: "
                      "3 Insufficient nvidia.com/gpu.") -> None:
        def refuse(pod):
            pod["status"]["conditions"] = [{"type": "PodScheduled", "status": "False", "reason": "Unschedulable",
                                            "message": message}]
        self._update(name, namespace, refuse)

    def pulling(self, name: str, namespace: str = "ns") -> None:
        self._event(name, namespace, "Pulling", f'Pulling image "{self.image_of(name, namespace)}"')

    def pulled(self, name: str, namespace: str = "ns", seconds: float = 2.0, hit: bool = False,
               size: int = 500_000_000) -> None:
        image = self.image_of(name, namespace)
        message = (f'Container image "{image}" already present on machine' if hit else
                   f'Successfully pulled image "{image}" in {seconds:g}s ({seconds:g}s including waiting). '
                   f"Image size: {size} bytes.")
        self._event(name, namespace, "Pulled", message)

    def pull_fails(self, name: str, namespace: str = "ns") -> None:
        image = self.image_of(name, namespace)
        self._event(name, namespace, "Failed", f'Failed to pull image "{image}": rpc error: not found')

        def waiting(pod):
            pod["status"]["containerStatuses"] = [{"name": CONTAINER, "image": image, "state": {"waiting": {
                "reason": "ErrImagePull", "message": f'failed to pull "{image}": not found'}}}]
        self._update(name, namespace, waiting)

    def running(self, name: str, namespace: str = "ns") -> None:
        def run(pod):
            pod["status"]["phase"] = "Running"
            pod["status"]["containerStatuses"] = [{"name": CONTAINER, "imageID": "sha256:" + "a" * 64,
                                                   "state": {"running": {"startedAt": "2025-11-24T16:00:05Z"}}}]
        self._update(name, namespace, run)
        self._event(name, namespace, "Started", f"Started container {CONTAINER}")

    def terminated(self, name: str, namespace: str = "ns", exit_code: int = 0, message: str = "",
                   reason: str | None = None) -> None:
        def end(pod):
            pod["status"]["phase"] = "Succeeded" if exit_code == 0 else "Failed"
            pod["status"]["containerStatuses"] = [{"name": CONTAINER, "imageID": "sha256:" + "a" * 64, "state": {
                "terminated": {"exitCode": exit_code, "reason": reason or ("Completed" if exit_code == 0 else "Error"),
                               "message": message, "startedAt": "2025-11-24T16:00:05Z"}}}]
        self._update(name, namespace, end)

    def pull_secrets_missing(self, name: str, secrets: Sequence[str], namespace: str = "ns") -> None:
        """The kubelet's event for imagePullSecrets it cannot read (pkg/kubelet/kubelet_pods.go), in its words."""
        self._event(name, namespace, "FailedToRetrieveImagePullSecret",
                    f"Unable to retrieve some image pull secrets ({', '.join(secrets)}); attempting to pull the "
                    "image may not succeed.")

    def deleting(self, name: str, namespace: str = "ns") -> None:
        """Someone deletes the pod (kubectl delete): the watch sees its deletionTimestamp while it still runs."""
        def mark(pod):
            pod["metadata"]["deletionTimestamp"] = "2025-11-24T16:00:09Z"
        self._update(name, namespace, mark)

    def deadline_exceeded(self, name: str, namespace: str = "ns", message: str = "") -> None:
        """The kubelet stops the pod at its activeDeadlineSeconds: the pod Failed with reason DeadlineExceeded, its
        container terminated by SIGTERM (exit 143), having written `message` (a workload's report)."""
        def stop(pod):
            pod["status"].update(phase="Failed", reason="DeadlineExceeded",
                                 message="Pod was active on the node longer than the specified deadline")
            pod["status"]["containerStatuses"] = [{"name": CONTAINER, "imageID": "sha256:" + "a" * 64, "state": {
                "terminated": {"exitCode": 143, "reason": "Error", "message": message,
                               "startedAt": "2025-11-24T16:00:05Z"}}}]
        self._update(name, namespace, stop)

    def run(self, names: Sequence[str], namespace: str = "ns", timing: Timing = Timing(), hit: bool = False,
            exit_code: int = 0, report: bool = True, ok: bool = True) -> None:
        """Take `names` from created to ended together, in step: each stage at the same moment for all of them,
        `timing` after now (the clock ends at `timing.terminated` later). `report`: the container writes the
        in-pod report (leave it off for simulated nodes and framework none)."""
        start = self.clock()

        def at(offset: float) -> None:
            self.clock.ms = start + offset

        at(timing.scheduled)
        for n in names:
            self.schedule(n, namespace)
        at(timing.pulling)
        for n in names:
            if hit:
                self.pulled(n, namespace, hit=True)
            else:
                self.pulling(n, namespace)
        if not hit:
            at(timing.pulled)
            for n in names:
                self.pulled(n, namespace, seconds=(timing.pulled - timing.pulling) / 1000.0)
        at(timing.running)
        for n in names:
            self.running(n, namespace)
        at(timing.terminated)
        for n in names:
            error = None if ok else "CUDA error: no device"
            text = workload_report(start, timing, ok=ok, error=error) if report else ""
            self.terminated(n, namespace, exit_code=exit_code, message=text)
