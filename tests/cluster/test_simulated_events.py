"""Simulated nodes look like real ones to any client: the pull simulator's Pulling, Pulled, Created and Started
events are named and filled as the real kubelet names and fills its own (client-go tools/record), field by
field. kube-burner's podLatency, for one, reads a container's start from the Started event's *name*
(`<pod>.<hex of UnixNano>`)."""

from __future__ import annotations

import datetime
import json
import re

from startbench.localcluster import realnode
from tests.cluster.helpers import wait_for
from tests.cluster.test_realnode import real_node  # noqa: F401 (the fixture)

REASONS = ("Pulling", "Pulled", "Created", "Started")
SECOND = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ$")  # metav1.Time: RFC 3339 in whole seconds
CONTAINER = "c"


def _pod(name: str, image: str, on_real_node: bool) -> dict:
    spec = {"restartPolicy": "Never",
            "nodeSelector": {"startbench.dev/pool": "real" if on_real_node else "cpu"},
            "containers": [{"name": CONTAINER, "image": image, "imagePullPolicy": "Always",
                            "command": ["sleep", "3"]}]}
    if on_real_node:
        spec["tolerations"] = [realnode.TOLERATION]
    return {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": name}, "spec": spec}


def _events(core, namespace: str, pod: str) -> dict[str, dict]:
    """The pod's events by reason, as JSON exactly as the API server gives them to any client."""
    raw = json.loads(core.list_namespaced_event(namespace, _preload_content=False).data)
    return {e["reason"]: e for e in raw["items"] if e["involvedObject"]["name"] == pod}


def _shape(value, path: str = "") -> set[tuple[str, str]]:
    """Every field's path and JSON type: which fields are present, and what they hold."""
    if isinstance(value, dict):
        out = {(path, "object")}
        for key, item in value.items():
            out |= _shape(item, f"{path}.{key}")
        return out
    if isinstance(value, list):
        out = {(path, "array")}
        for item in value:
            out |= _shape(item, f"{path}[]")
        return out
    return {(path, type(value).__name__)}


def _seconds(text: str) -> int:
    return int(datetime.datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp())


def _check_like_the_kubelet(event: dict, pod: dict, image: str) -> int:
    """Assert what the kubelet's recorder puts in every event of a pod's container; return the event's time in
    Unix nanoseconds, read back from its name as kube-burner does."""
    meta, name, node = event["metadata"], pod["metadata"]["name"], pod["spec"]["nodeName"]
    match = re.fullmatch(re.escape(name) + r"\.([0-9a-f]+)", meta["name"])
    assert match, f"{meta['name']}: not <pod>.<hex of UnixNano>"
    nanos = int(match.group(1), 16)
    for field in ("firstTimestamp", "lastTimestamp"):
        assert SECOND.match(event[field]), (field, event[field])
        assert _seconds(event[field]) == nanos // 10**9, (field, event[field], meta["name"])
    assert SECOND.match(meta["creationTimestamp"]), meta
    # The recorder posts asynchronously: the API server creates the event a little after its time.
    assert 0 <= _seconds(meta["creationTimestamp"]) - nanos // 10**9 <= 3, (meta["creationTimestamp"], meta["name"])
    assert event["count"] == 1 and event["type"] == "Normal" and event["eventTime"] is None
    assert event["source"] == {"component": "kubelet", "host": node}, event["source"]
    assert (event["reportingComponent"], event["reportingInstance"]) == ("kubelet", node)
    assert event.get("action") is None and "series" not in event and "related" not in event
    ref = event["involvedObject"]
    assert {k: v for k, v in ref.items() if k != "resourceVersion"} == {
        "apiVersion": "v1", "kind": "Pod", "name": name, "namespace": pod["metadata"]["namespace"],
        "uid": pod["metadata"]["uid"], "fieldPath": f"spec.containers{{{CONTAINER}}}"}, ref
    assert ref["resourceVersion"].isdigit(), ref
    [managed] = meta["managedFields"]
    assert (managed["manager"], managed["operation"], managed["apiVersion"]) == ("kubelet", "Update", "v1"), managed
    message = event["message"]
    expected = {"Pulling": f'Pulling image "{image}"', "Created": f"Created container: {CONTAINER}",
                "Started": f"Started container {CONTAINER}"}.get(event["reason"])
    if expected is None:
        assert re.fullmatch(rf'Successfully pulled image "{re.escape(image)}" in \S+ \(\S+ including waiting\)\. '
                            r"Image size: \d+ bytes\.", message), message
    else:
        assert message == expected, message
    return nanos


def test_simulated_kubelet_events_match_the_real_kubelets_field_by_field(real_node, core, namespace, base_image):
    image = base_image
    for name, on_real in (("real", True), ("sim", False)):
        core.create_namespaced_pod(namespace, _pod(name, image, on_real))

    def all_events(pod):
        events = _events(core, namespace, pod)
        return events if all(r in events for r in REASONS) else None

    events = {name: wait_for(lambda name=name: all_events(name), timeout=180, what=f"{name}'s {REASONS} events")
              for name in ("real", "sim")}

    def started(pod):
        # The kubelet posts Started first and shows the container's start in the pod's status a little later.
        body = core.api_client.sanitize_for_serialization(core.read_namespaced_pod(pod, namespace))
        state = ((body["status"].get("containerStatuses") or [{}])[0]).get("state") or {}
        return body if (state.get("running") or state.get("terminated") or {}).get("startedAt") else None

    pods = {name: wait_for(lambda name=name: started(name), timeout=60, what=f"{name}'s container start in its status")
            for name in ("real", "sim")}
    assert pods["real"]["spec"]["nodeName"] == real_node
    assert pods["sim"]["spec"]["nodeName"].startswith("sim-cpu-")

    for reason in REASONS:
        real, sim = events["real"][reason], events["sim"][reason]
        # The same fields, with the same JSON types (managedFields included: the same fields set, by `kubelet`).
        assert _shape(sim) == _shape(real), (reason, sorted(_shape(sim) ^ _shape(real)))
    times = {}
    for name in ("real", "sim"):
        times[name] = [_check_like_the_kubelet(events[name][r], pods[name], image) for r in REASONS]
        assert times[name] == sorted(times[name]), (name, "events out of order", times[name])

    # kube-burner's ContainersStarted: the Started event's name, less the pod's creation. On the simulated node it
    # is as sane as on the real one: the time the container started, give or take the status's whole seconds.
    for name in ("real", "sim"):
        started_ns = times[name][-1]
        created = _seconds(pods[name]["metadata"]["creationTimestamp"])
        assert 0 <= started_ns / 1e9 - created < 120, (name, started_ns, created)
        state = pods[name]["status"]["containerStatuses"][0]["state"]
        started_at = _seconds((state.get("running") or state.get("terminated") or {})["startedAt"])
        assert abs(started_ns / 1e9 - started_at) < 3, (name, started_ns, started_at)
