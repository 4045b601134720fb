"""The operator's reads and writes to the Kubernetes API (the official client, synchronous). No maths here:
callers decide, this module does the I/O and turns API errors into results they can act on."""

from __future__ import annotations

import datetime
import logging
import uuid
from collections.abc import Mapping, Sequence
from typing import Any

from kubernetes import client
from kubernetes.client.rest import ApiException

from startbench import GROUP, VERSION
from startbench.manifests import LABEL_BENCHMARK, LABEL_RECORDS, RECORDS_KEY, BenchmarkRef, records_configmap

log = logging.getLogger("startbench.kube")
PLURAL = "benchmarks"
COMPONENT = "startbench-operator"


def now_iso() -> str:
    return datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


class ClusterIO:
    def __init__(self, api: client.ApiClient):
        self.api = api
        self.core = client.CoreV1Api(api)
        self.custom = client.CustomObjectsApi(api)

    # --- nodes
    def list_nodes(self) -> list[dict[str, Any]]:
        items = self.api.sanitize_for_serialization(self.core.list_node()).get("items", [])
        return items

    def node_metadata(self, name: str) -> tuple[dict[str, str], dict[str, str]]:
        """(labels, annotations) of a node; empty when it cannot be read."""
        try:
            meta = self.core.read_node(name).metadata
        except ApiException:
            return {}, {}
        return dict(meta.labels or {}), dict(meta.annotations or {})

    # --- pods
    def create_pod(self, namespace: str, manifest: Mapping[str, Any]) -> str | None:
        """Create a run's pod. None on success or when it already exists (names are deterministic, so a
        restarted operator re-creating a run finds its pod); otherwise the API's refusal, for the record."""
        try:
            self.core.create_namespaced_pod(namespace, manifest)
            return None
        except ApiException as err:
            if err.status == 409:
                return None
            return f"the API server refused the pod ({err.status} {err.reason}): {_api_message(err)}"

    def delete_pod(self, namespace: str, name: str) -> None:
        try:
            self.core.delete_namespaced_pod(name, namespace, grace_period_seconds=0)
        except ApiException as err:
            if err.status != 404:
                log.warning("could not delete pod %s/%s: %s", namespace, name, err.reason)

    def annotate_pod(self, namespace: str, name: str, annotations: Mapping[str, str]) -> None:
        try:
            self.core.patch_namespaced_pod(name, namespace, {"metadata": {"annotations": dict(annotations)}})
        except ApiException as err:
            if err.status != 404:
                log.warning("could not annotate pod %s/%s: %s", namespace, name, err.reason)

    def list_run_pods(self, namespace: str, benchmark: str) -> list[dict[str, Any]]:
        pods = self.core.list_namespaced_pod(namespace, label_selector=f"{LABEL_BENCHMARK}={benchmark}")
        return self.api.sanitize_for_serialization(pods).get("items", [])

    # --- run records (ConfigMaps owned by the Benchmark)
    def read_records(self, namespace: str, benchmark: str) -> list[str]:
        maps = self.core.list_namespaced_config_map(
            namespace, label_selector=f"{LABEL_BENCHMARK}={benchmark},{LABEL_RECORDS}=true")
        return [(m.data or {}).get(RECORDS_KEY, "[]") for m in maps.items]

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
                self.core.replace_namespaced_config_map(name, ref.namespace, body)
            except ApiException as err:
                if err.status != 404:
                    raise
                self.core.create_namespaced_config_map(ref.namespace, body)
        return names

    # --- the Benchmark
    def patch_status(self, ref: BenchmarkRef, status: Mapping[str, Any]) -> None:
        self.custom.patch_namespaced_custom_object_status(
            GROUP, VERSION, ref.namespace, PLURAL, ref.name, {"status": dict(status)})

    def get_benchmark(self, namespace: str, name: str) -> dict[str, Any] | None:
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
            involved_object=client.V1ObjectReference(api_version=f"{GROUP}/{VERSION}", kind="Benchmark",
                                                     name=ref.name, namespace=ref.namespace, uid=ref.uid),
            reason=reason, message=message[:1024], type=type_, count=1, first_timestamp=now, last_timestamp=now,
            source=client.V1EventSource(component=COMPONENT), reporting_component=COMPONENT,
            reporting_instance=COMPONENT)
        try:
            self.core.create_namespaced_event(ref.namespace, body)
        except ApiException as err:
            log.warning("could not post event %s on %s/%s: %s", reason, ref.namespace, ref.name, err.reason)


def _api_message(err: ApiException) -> str:
    import json
    try:
        return json.loads(err.body).get("message", "")[:500]
    except (TypeError, ValueError, AttributeError):
        return str(err.body)[:500]
