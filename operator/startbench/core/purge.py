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

This module is the pure part: what to remove (reference aliases, the annotation edit, reading `ctr images ls`),
the agent's DaemonSet, and reading an exec's exit status. The I/O is startbench.runtime.purger, which the
reconciler calls right before creating a cold run's pod, through ClusterIO.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Mapping, Sequence
from typing import Any, Literal

from startbench.core.reference import aliases, normalize

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

How = Literal["simulated-cache", "cri", "absent"]


@dataclasses.dataclass(frozen=True)
class PurgeResult:
    ok: bool
    how: How | None  # None when it failed
    message: str


# --- image references (pure)
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
    digest = image.partition("@")[2]
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
