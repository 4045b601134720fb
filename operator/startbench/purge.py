"""Removing a run's image from its node before a cold run (spec.purgeImageBeforeColdRun), and the manifest of
the opt-in agent that makes it possible on real nodes.

A cold run asks for pull policy Always, but Always only re-resolves the manifest: layers already on the node are
not fetched again, so the pull is short and the run is not truly cold. Only removing the image first makes the
kubelet fetch every layer. How:

- simulated nodes (KWOK, `kwok.x-k8s.io/node: fake`): the pull simulator keeps each node's image cache in the
  node annotation `sim.startbench.dev/images` (a JSON list) and re-reads it from its node watch, so removing the
  entry there makes the next pull a miss.
- real nodes: the cache-purge agent (a DaemonSet, off by default, see docs/purge.md) holds an idle pod on each
  node with the node's containerd socket mounted; the operator execs `ctr images ls` in the pod on the run's
  node, picks every reference that names the same image (tag, `@sha256` form, the `sha256:` image ID), and
  removes them all with `ctr images rm --sync`, so containerd garbage-collects the layers too.

The pure parts (reference aliases, the annotation edit, reading `ctr images ls`, the DaemonSet manifest) are
separate functions; `purge_image` is the one entry point the reconciler calls, right before creating a run's pod.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import re
import time
from collections.abc import Iterable, Mapping, Sequence
from typing import Any, Literal

from startbench.localcluster.nodes import CACHED_IMAGES

log = logging.getLogger("startbench.purge")

# The agent's pods are found by this label, in the namespace the operator is told (the chart's release namespace).
COMPONENT_LABEL = "app.kubernetes.io/component"
COMPONENT = "cache-purge"
SELECTOR = f"{COMPONENT_LABEL}={COMPONENT}"
CONTAINER = "agent"
CHART_VALUE = "cachePurge.enabled=true"
# Where the agent mounts the node's containerd socket; the host side is daemonset_manifest's `cri_socket`.
SOCKET_IN_POD = "/run/containerd/containerd.sock"
DEFAULT_HOST_SOCKET = "/run/containerd/containerd.sock"
CTR = ("ctr", "--address", SOCKET_IN_POD, "--namespace", "k8s.io")  # k8s.io: the CRI plugin's namespace
EXEC_TIMEOUT_S = 120.0
PATCH_ATTEMPTS = 5

How = Literal["simulated-cache", "cri", "absent"]


@dataclasses.dataclass(frozen=True)
class PurgeResult:
    ok: bool
    how: How | None  # None when it failed
    message: str


# --- image references (pure)
_REF = re.compile(r"^(?P<name>[^@\s]+?)(?::(?P<tag>[\w][\w.-]{0,127}))?(?:@(?P<digest>sha256:[a-f0-9]{64}))?$")


def _split(ref: str) -> tuple[str, str | None, str | None]:
    """(name, tag, digest) of a reference; the tag is what follows the last ':' after the last '/'."""
    match = _REF.match(ref)
    if not match:
        return ref, None, None
    return match.group("name"), match.group("tag"), match.group("digest")


def normalize(ref: str) -> str:
    """The fully qualified spelling containerd's CRI plugin stores: docker.io/library/x:latest for `x`."""
    name, tag, digest = _split(ref)
    first, _, rest = name.partition("/")
    if not rest or not ("." in first or ":" in first or first == "localhost"):
        name = f"docker.io/{name}"
    if name.startswith("docker.io/") and name.count("/") == 1:
        name = "docker.io/library/" + name[len("docker.io/"):]
    if tag is None and digest is None:
        tag = "latest"
    return name + (f":{tag}" if tag else "") + (f"@{digest}" if digest else "")


def aliases(ref: str) -> list[str]:
    """References that name the same image as `ref`, as far as its spelling tells: itself, and for
    `name:tag@sha256:d` also `name@sha256:d` and `name:tag` (the forms containerd records for a pull by digest)."""
    name, tag, digest = _split(ref)
    out = [ref]
    if digest:
        out.append(f"{name}@{digest}")
        if tag:
            out.append(f"{name}:{tag}")
    return list(dict.fromkeys(out))


def _keys(ref: str) -> set[str]:
    return {normalize(a) for a in aliases(ref)}


def cached_images(annotation_json: str | None) -> list[str]:
    """The simulated node's cache annotation as a list; unreadable or absent counts as an empty cache."""
    try:
        cached = json.loads(annotation_json or "[]")
    except ValueError:
        return []
    return [str(e) for e in cached] if isinstance(cached, list) else []


def without_image(annotation_json: str | None, image: str) -> str:
    """The simulated node's cache annotation (a JSON list of references) without `image` and its aliases,
    sorted as the pull simulator writes it."""
    keys = _keys(image)
    return json.dumps(sorted(e for e in cached_images(annotation_json) if normalize(e) not in keys))


# --- reading `ctr images ls` (pure)
@dataclasses.dataclass(frozen=True)
class CtrImage:
    ref: str
    digest: str  # the target: manifest or index digest


def parse_ctr_images(table: str) -> list[CtrImage]:
    """Rows of `ctr images ls` (columns REF TYPE DIGEST SIZE PLATFORMS LABELS, space-separated)."""
    rows = []
    for line in table.splitlines():
        fields = line.split()
        if len(fields) < 3 or fields[0] == "REF":
            continue
        digest = next((f for f in fields[1:] if f.startswith("sha256:")), None)
        if digest:
            rows.append(CtrImage(fields[0], digest))
    return rows


def refs_to_remove(table: str, image: str) -> list[str]:
    """Every reference in `ctr images ls` output that shares a target with `image`: its tag, its `@sha256`
    form and its `sha256:` image ID. Removing only one would leave the layers on the node (the others still
    hold them), and the next pull would fetch nothing. Empty when the node does not have the image."""
    rows = parse_ctr_images(table)
    keys = _keys(image)
    targets = {r.digest for r in rows if normalize(r.ref) in keys}
    _, _, digest = _split(image)
    if digest:
        targets.add(digest)
    return [r.ref for r in rows if r.digest in targets or normalize(r.ref) in keys]


# --- the agent's DaemonSet (pure)
def daemonset_manifest(namespace: str, image: str, node_selector: Mapping[str, str] | None = None,
                       tolerations: Sequence[Mapping[str, Any]] | None = None,
                       cri_socket: str = DEFAULT_HOST_SOCKET, name: str = "startbench-cache-purge") -> dict:
    """The cache-purge agent: one idle pod per selected node with the node's containerd socket mounted, for the
    operator to exec `ctr` in. `image` must contain `ctr` and `/bin/sh` (Debian's `containerd` package has
    `ctr`). Tolerates every taint unless `tolerations` is given, so it also lands on GPU nodes."""
    labels = {"app.kubernetes.io/name": "startbench", "app.kubernetes.io/managed-by": "startbench",
              COMPONENT_LABEL: COMPONENT}
    pod_spec: dict[str, Any] = {
        "automountServiceAccountToken": False,
        "enableServiceLinks": False,
        "terminationGracePeriodSeconds": 5,
        "securityContext": {"seccompProfile": {"type": "RuntimeDefault"}},
        "containers": [{
            "name": CONTAINER,
            "image": image,
            "imagePullPolicy": "IfNotPresent",
            # An idle holder for `kubectl exec`; exits at once on SIGTERM (a bare `sleep` as PID 1 would not).
            "command": ["/bin/sh", "-c", "trap 'exit 0' TERM INT; while :; do sleep 3600 & wait $!; done"],
            "securityContext": {
                # Root, to open the root-owned socket; no capability and no privileged mode are needed for
                # that. The socket itself is root on the node: see docs/purge.md.
                "runAsUser": 0,
                "runAsNonRoot": False,
                "privileged": False,
                "allowPrivilegeEscalation": False,
                "readOnlyRootFilesystem": True,
                "capabilities": {"drop": ["ALL"]},
            },
            "resources": {"requests": {"cpu": "5m", "memory": "16Mi"}, "limits": {"memory": "64Mi"}},
            "volumeMounts": [{"name": "containerd-socket", "mountPath": SOCKET_IN_POD}],
        }],
        "volumes": [{"name": "containerd-socket", "hostPath": {"path": cri_socket, "type": "Socket"}}],
        "tolerations": [dict(t) for t in tolerations] if tolerations is not None else [{"operator": "Exists"}],
    }
    if node_selector:
        pod_spec["nodeSelector"] = dict(node_selector)
    return {
        "apiVersion": "apps/v1",
        "kind": "DaemonSet",
        "metadata": {"name": name, "namespace": namespace, "labels": dict(labels)},
        "spec": {
            "selector": {"matchLabels": {"app.kubernetes.io/name": "startbench", COMPONENT_LABEL: COMPONENT}},
            "updateStrategy": {"type": "RollingUpdate"},
            "template": {"metadata": {"labels": dict(labels)}, "spec": pod_spec},
        },
    }


# --- I/O
def purge_image(core, node: str, image: str, namespace_of_daemonset: str | None, simulated: bool) -> PurgeResult:
    """Remove `image` (and its aliases) from `node`'s image cache before a cold run. Never raises for an API
    error: a failure is a PurgeResult with ok=False and a message that says what to change."""
    from kubernetes.client.rest import ApiException
    try:
        if simulated:
            return _purge_simulated(core, node, image)
        return _purge_cri(core, node, image, namespace_of_daemonset)
    except ApiException as err:
        return PurgeResult(False, None, f"could not purge image {image!r} from node {node}: the API server "
                           f"answered {err.status} {err.reason}")
    except Exception as err:  # a broken exec stream: the run must still end with a reason, not crash the step
        log.exception("purge of %s on node %s", image, node)
        return PurgeResult(False, None, f"could not purge image {image!r} from node {node}: {err}"[:1000])


def _purge_simulated(core, node: str, image: str) -> PurgeResult:
    from kubernetes.client.rest import ApiException
    for _ in range(PATCH_ATTEMPTS):
        meta = core.read_node(node).metadata
        before = (meta.annotations or {}).get(CACHED_IMAGES)
        after = without_image(before, image)
        if len(json.loads(after)) == len(cached_images(before)):
            return PurgeResult(True, "absent", f"image {image!r} was not in simulated node {node}'s cache")
        try:
            # resourceVersion makes the patch conditional: a concurrent change (the pull simulator recording a
            # finished pull) is re-read instead of overwritten.
            core.patch_node(node, {"metadata": {"resourceVersion": meta.resource_version,
                                                "annotations": {CACHED_IMAGES: after}}})
        except ApiException as err:
            if err.status == 409:
                continue
            raise
        return PurgeResult(True, "simulated-cache", f"removed image {image!r} from simulated node {node}'s cache")
    return PurgeResult(False, None, f"node {node}'s annotation {CACHED_IMAGES} kept changing; could not remove "
                       f"image {image!r} in {PATCH_ATTEMPTS} attempts")


def _agent_pod(core, node: str, namespace: str | None) -> str | None:
    if not namespace:
        return None
    pods = core.list_namespaced_pod(namespace, label_selector=SELECTOR,
                                    field_selector=f"spec.nodeName={node},status.phase=Running").items
    ready = [p for p in pods if not p.metadata.deletion_timestamp]
    return ready[0].metadata.name if ready else None


def _purge_cri(core, node: str, image: str, namespace: str | None) -> PurgeResult:
    pod = _agent_pod(core, node, namespace)
    if pod is None:
        where = f"in namespace {namespace}" if namespace else "(no namespace configured for it)"
        return PurgeResult(False, None, f"spec.purgeImageBeforeColdRun is true but no running cache-purge agent "
                           f"(label {SELECTOR}) is on node {node} {where}: enable the agent (chart value "
                           f"{CHART_VALUE}, with a nodeSelector and tolerations that reach this node) or set "
                           f"spec.purgeImageBeforeColdRun to false")
    rc, out, err = _exec(core, namespace, pod, [*CTR, "images", "ls"])
    if rc != 0:
        hint = ("the API server could not run it in the pod (can it reach the node's kubelet? does the operator's "
                "Role allow pods/exec?)" if rc == -1 else "check that the agent's image has ctr and that the chart's "
                "cachePurge.criSocket is containerd's socket on that node")
        return PurgeResult(False, None, f"`ctr images ls` in cache-purge pod {namespace}/{pod} on node {node} "
                           f"failed (exit {rc}): {err.strip()[-300:]}; {hint}")
    refs = refs_to_remove(out, image)
    if not refs:
        return PurgeResult(True, "absent", f"image {image!r} was not on node {node}")
    rc, out, err = _exec(core, namespace, pod, [*CTR, "images", "rm", "--sync", *refs])
    if rc != 0 and "not found" not in err:
        return PurgeResult(False, None, f"`ctr images rm` in cache-purge pod {namespace}/{pod} on node {node} "
                           f"failed (exit {rc}): {err.strip()[-300:]}")
    return PurgeResult(True, "cri", f"removed {', '.join(refs)} from node {node}")


def _exec(core, namespace: str, pod: str, command: Iterable[str]) -> tuple[int, str, str]:
    """Run `command` in the agent's container; (exit code, stdout, stderr). When the API server could not run it
    at all (it cannot reach the node's kubelet, say), the exit code is -1 and stderr says why."""
    from kubernetes.stream import stream
    from kubernetes.stream.ws_client import ERROR_CHANNEL
    ws = stream(core.connect_get_namespaced_pod_exec, pod, namespace, container=CONTAINER, command=list(command),
                stdin=False, stdout=True, stderr=True, tty=False, _preload_content=False)
    out, err, status = [], [], []
    deadline = time.monotonic() + EXEC_TIMEOUT_S
    try:
        while ws.is_open() and time.monotonic() < deadline:
            ws.update(timeout=1)
            out.append(ws.read_stdout() or "")
            err.append(ws.read_stderr() or "")
            status.append(ws.read_channel(ERROR_CHANNEL) or "")
        if ws.is_open():
            return 124, "".join(out), "".join(err) + f"\ntimed out after {EXEC_TIMEOUT_S:.0f}s"
        out.append(ws.read_stdout() or "")
        err.append(ws.read_stderr() or "")
        status.append(ws.read_channel(ERROR_CHANNEL) or "")
    finally:
        ws.close()
    code, stderr = exit_status("".join(status), "".join(err))
    return code, "".join(out), stderr


def exit_status(status_json: str, stderr: str) -> tuple[int, str]:
    """(exit code, stderr) from the exec's status channel (a metav1.Status)."""
    import yaml
    try:
        status = yaml.safe_load(status_json) or {}
    except yaml.YAMLError:
        status = {}
    if not status_json.strip() or not isinstance(status, dict):
        return -1, (stderr + "\nthe exec ended without an exit status").strip()
    if status.get("status") == "Success":
        return 0, stderr
    causes = (status.get("details") or {}).get("causes") or []
    if status.get("reason") == "NonZeroExitCode" and causes:
        try:
            return int(causes[0].get("message", "")), stderr
        except ValueError:
            pass
    return -1, (stderr + "\n" + str(status.get("message", status_json))).strip()
