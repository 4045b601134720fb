"""The one seam between startbench and the Kubernetes API: every read and write of the operator and of the
command line goes through ClusterIO (the official client, synchronous). No maths here: callers decide, this
module does the I/O and turns API errors into results they can act on. A unit test replaces it with a fake
(tests/unit/fakes.py) that keeps the same methods."""

from __future__ import annotations

import datetime
import json
import logging
import time
import uuid
from collections.abc import Mapping, Sequence
from typing import Any

from kubernetes import client
from kubernetes.client.rest import ApiException

from startbench.core.contracts import COMPONENT, GROUP, KIND, LABEL_BENCHMARK, LABEL_RECORDS, PLURAL, RECORDS_KEY, VERSION
from startbench.core.manifests import BenchmarkRef
from startbench.core.records import records_configmap

log = logging.getLogger("startbench.runtime.kube")
RAW = {"_preload_content": False}  # the response as bytes: see _read


def _read(response) -> bytes:
    """The body of a response asked for with `**RAW`, read whole and its connection handed back to the pool.
    The operator makes these calls thousands of times a benchmark and never needs the client's model objects:
    turning a Pod or a NodeList into them, and back into dicts, cost more CPU than the request itself."""
    try:
        return response.data
    finally:
        response.release_conn()


def _json(response) -> Any:
    return json.loads(_read(response))


class ClusterIO:
    def __init__(self, api: client.ApiClient):
        self.api = api
        self.core = client.CoreV1Api(api)
        self.custom = client.CustomObjectsApi(api)

    # --- nodes
    def list_nodes(self) -> list[dict[str, Any]]:
        return _json(self.core.list_node(**RAW)).get("items", [])

    def node_metadata(self, name: str) -> tuple[dict[str, str], dict[str, str]]:
        """(labels, annotations) of a node; empty when it cannot be read."""
        try:
            meta = self.core.read_node(name).metadata
        except ApiException:
            return {}, {}
        return dict(meta.labels or {}), dict(meta.annotations or {})

    def kubelet_configz(self, name: str) -> tuple[dict[str, Any] | None, str | None]:
        """The node's kubelet configuration (`/configz` through the API server's node proxy), or why not."""
        import json
        try:
            text = self.core.connect_get_node_proxy_with_path(name, "configz", _preload_content=False).data
            return json.loads(text), None
        except ApiException as err:
            hint = "; grant `get nodes/proxy` to record it" if err.status == 403 else ""
            return None, f"{err.status} {err.reason}{hint}"
        except (ValueError, OSError) as err:
            return None, str(err)

    def node_images(self, name: str) -> list[dict[str, Any]] | None:
        """The images a node's kubelet reports (`status.images`: names and sizeBytes); None when it cannot be read."""
        try:
            node = self.core.read_node(name)
        except ApiException:
            return None
        return [{"names": list(i.names or []), "sizeBytes": i.size_bytes} for i in (node.status.images or [])]

    def node_annotations(self, name: str) -> tuple[dict[str, str], str]:
        """(annotations, resourceVersion) of a node; raises ApiException when it cannot be read."""
        meta = self.core.read_node(name).metadata
        return dict(meta.annotations or {}), meta.resource_version

    def patch_node_annotations(self, name: str, annotations: Mapping[str, str], resource_version: str) -> bool:
        """Set annotations on a node if it is still at `resource_version`; False when it changed meanwhile (409).
        Under the operator's own field manager, so the node's managedFields say which change was the operator's."""
        try:
            self.core.patch_node(name, {"metadata": {"resourceVersion": resource_version,
                                                     "annotations": dict(annotations)}}, field_manager=COMPONENT)
        except ApiException as err:
            if err.status == 409:
                return False
            raise
        return True

    def allocatable_gpus(self, names: Sequence[str]) -> list[int]:
        """Allocatable nvidia.com/gpu of each node that still exists (a gone node is left out)."""
        out = []
        for name in names:
            try:
                node = self.core.read_node(name)
            except ApiException as err:
                if err.status == 404:
                    continue
                raise
            out.append(int((node.status.allocatable or {}).get("nvidia.com/gpu", "0")))
        return out

    # --- pods
    def create_pod(self, namespace: str, manifest: Mapping[str, Any]) -> str | None:
        """Create a run's pod. None on success or when it already exists (names are deterministic, so a
        restarted operator re-creating a run finds its pod); otherwise the API's refusal, for the record."""
        try:
            _read(self.core.create_namespaced_pod(namespace, manifest, **RAW))
            return None
        except ApiException as err:
            if err.status == 409:
                return None
            return f"the API server refused the pod ({err.status} {err.reason}): {_api_message(err)}"

    def delete_pod(self, namespace: str, name: str) -> None:
        try:
            _read(self.core.delete_namespaced_pod(name, namespace, grace_period_seconds=0, **RAW))
        except ApiException as err:
            if err.status != 404:
                log.warning("could not delete pod %s/%s: %s", namespace, name, err.reason)

    def annotate_pod(self, namespace: str, name: str, annotations: Mapping[str, str]) -> None:
        try:
            _read(self.core.patch_namespaced_pod(name, namespace, {"metadata": {"annotations": dict(annotations)}},
                                                 **RAW))
        except ApiException as err:
            if err.status != 404:
                log.warning("could not annotate pod %s/%s: %s", namespace, name, err.reason)

    def list_run_pods(self, namespace: str, benchmark: str) -> list[dict[str, Any]]:
        """Every run pod of a benchmark now (a LIST, for a view of them that is complete as of this moment)."""
        return _json(self.core.list_namespaced_pod(namespace, label_selector=f"{LABEL_BENCHMARK}={benchmark}",
                                                   **RAW)).get("items", [])

    def running_pods_on_node(self, namespace: str, selector: str, node: str) -> list[str]:
        """Names of the running pods matching `selector` on `node` (not being deleted)."""
        pods = self.core.list_namespaced_pod(namespace, label_selector=selector,
                                             field_selector=f"spec.nodeName={node},status.phase=Running").items
        return [p.metadata.name for p in pods if not p.metadata.deletion_timestamp]

    def exec_in_pod(self, namespace: str, pod: str, container: str, command: Sequence[str],
                    timeout_s: float) -> tuple[int, str, str]:
        """Run `command` in a container; (exit code, stdout, stderr). When the API server could not run it at all
        (it cannot reach the node's kubelet, say), the exit code is -1 and stderr says why; 124 on timeout."""
        from kubernetes.stream import stream
        from kubernetes.stream.ws_client import ERROR_CHANNEL

        from startbench.core.purge import exit_status
        ws = stream(self.core.connect_get_namespaced_pod_exec, pod, namespace, container=container,
                    command=list(command), stdin=False, stdout=True, stderr=True, tty=False, _preload_content=False)
        out, err, status = [], [], []
        deadline = time.monotonic() + timeout_s
        try:
            while ws.is_open() and time.monotonic() < deadline:
                ws.update(timeout=1)
                out.append(ws.read_stdout() or "")
                err.append(ws.read_stderr() or "")
                status.append(ws.read_channel(ERROR_CHANNEL) or "")
            if ws.is_open():
                return 124, "".join(out), "".join(err) + f"\ntimed out after {timeout_s:.0f}s"
            out.append(ws.read_stdout() or "")
            err.append(ws.read_stderr() or "")
            status.append(ws.read_channel(ERROR_CHANNEL) or "")
        finally:
            ws.close()
        code, stderr = exit_status("".join(status), "".join(err))
        return code, "".join(out), stderr

    # --- run records (ConfigMaps owned by the Benchmark)
    def read_records(self, namespace: str, benchmark: str, names: Sequence[str] = ()) -> list[str]:
        """The records chunks of a benchmark: of the ConfigMaps `names` when given (a missing one raises the
        API's 404), else of every ConfigMap labelled as its records."""
        if names:
            maps = [self.core.read_namespaced_config_map(n, namespace) for n in names]
        else:
            maps = self.core.list_namespaced_config_map(
                namespace, label_selector=f"{LABEL_BENCHMARK}={benchmark},{LABEL_RECORDS}=true").items
        return [(m.data or {}).get(RECORDS_KEY, "[]") for m in maps]

    def write_records(self, ref: BenchmarkRef, chunks: Sequence[str], previous: Sequence[str]) -> list[str]:
        """Create or replace the records ConfigMaps for `chunks`, skipping the ones that did not change.
        Returns their names. Safe to repeat."""
        names = []
        for index, chunk in enumerate(chunks):
            body = records_configmap(ref, index, chunk)
            name = body["metadata"]["name"]
            names.append(name)
            if index < len(previous) and previous[index] == chunk:
                continue
            try:
                _read(self.core.replace_namespaced_config_map(name, ref.namespace, body, **RAW))
            except ApiException as err:
                if err.status != 404:
                    raise
                _read(self.core.create_namespaced_config_map(ref.namespace, body, **RAW))
        return names

    # --- secrets (the command line's build credentials; the operator itself reads none)
    def read_secret(self, namespace: str, name: str) -> dict[str, Any]:
        """A Secret as a dict (data base64-encoded, as the API gives it)."""
        return self.api.sanitize_for_serialization(self.core.read_namespaced_secret(name, namespace))

    # --- the Benchmark
    def patch_status(self, ref: BenchmarkRef, status: Mapping[str, Any]) -> None:
        _read(self.custom.patch_namespaced_custom_object_status(
            GROUP, VERSION, ref.namespace, PLURAL, ref.name, {"status": dict(status)}, **RAW))

    def get_benchmark(self, namespace: str, name: str) -> dict[str, Any] | None:
        """The Benchmark as a dict; None when there is none of that name."""
        try:
            return self.custom.get_namespaced_custom_object(GROUP, VERSION, namespace, PLURAL, name)
        except ApiException as err:
            if err.status == 404:
                return None
            raise

    def event(self, ref: BenchmarkRef, type_: str, reason: str, message: str) -> None:
        """A Kubernetes event on the Benchmark (`kubectl describe sbench` shows it)."""
        now = datetime.datetime.now(datetime.timezone.utc)
        body = client.CoreV1Event(
            metadata=client.V1ObjectMeta(name=f"{ref.name}.{uuid.uuid4().hex[:16]}", namespace=ref.namespace),
            involved_object=client.V1ObjectReference(api_version=f"{GROUP}/{VERSION}", kind=KIND,
                                                     name=ref.name, namespace=ref.namespace, uid=ref.uid),
            reason=reason, message=message[:1024], type=type_, count=1, first_timestamp=now, last_timestamp=now,
            source=client.V1EventSource(component=COMPONENT), reporting_component=COMPONENT,
            reporting_instance=COMPONENT)
        try:
            _read(self.core.create_namespaced_event(ref.namespace, body, **RAW))
        except ApiException as err:
            log.warning("could not post event %s on %s/%s: %s", reason, ref.namespace, ref.name, err.reason)


class Leases:
    """The Lease the operator's replicas elect their leader with (runtime/leader.py decides; this reads and
    writes). Specs are plain dicts in the API's own field names; writes are conditional on the version read."""

    def __init__(self, api: client.ApiClient):
        self.api = api
        self.coordination = client.CoordinationV1Api(api)

    @classmethod
    def from_environment(cls) -> "Leases":
        """In a pod: its ServiceAccount; elsewhere: $KUBECONFIG (as the operator's Kopf login does)."""
        from kubernetes import config as kube_config
        try:
            kube_config.load_incluster_config()
        except kube_config.ConfigException:
            kube_config.load_kube_config()
        return cls(client.ApiClient())

    def get(self, namespace: str, name: str) -> tuple[dict[str, Any], str] | None:
        """(spec, resourceVersion), or None when there is no such Lease. Times stay as the API wrote them."""
        try:
            raw = self.coordination.read_namespaced_lease(name, namespace, _preload_content=False)
        except ApiException as err:
            if err.status == 404:
                return None
            raise
        import json
        body = json.loads(raw.data)
        return body.get("spec") or {}, body["metadata"]["resourceVersion"]

    def create(self, namespace: str, name: str, spec: Mapping[str, Any]) -> bool:
        """False when another candidate created it first."""
        body = {"apiVersion": "coordination.k8s.io/v1", "kind": "Lease",
                "metadata": {"name": name, "namespace": namespace}, "spec": dict(spec)}
        try:
            self.coordination.create_namespaced_lease(namespace, body)
        except ApiException as err:
            if err.status == 409:
                return False
            raise
        return True

    def update(self, namespace: str, name: str, spec: Mapping[str, Any], resource_version: str) -> bool:
        """False when the Lease changed since it was read (another candidate wrote it)."""
        body = {"apiVersion": "coordination.k8s.io/v1", "kind": "Lease",
                "metadata": {"name": name, "namespace": namespace, "resourceVersion": resource_version},
                "spec": dict(spec)}
        try:
            self.coordination.replace_namespaced_lease(name, namespace, body)
        except ApiException as err:
            if err.status in (409, 404):
                return False
            raise
        return True


def _api_message(err: ApiException) -> str:
    import json
    try:
        return json.loads(err.body).get("message", "")[:500]
    except (TypeError, ValueError, AttributeError):
        return str(err.body)[:500]
