"""Kubelet and scheduler events of a run pod, parsed into typed facts. Pure: (reason, message) in, fact out.

Events expire (one hour by default), so the operator reads them as they arrive and hands each one here
together with the moment it arrived on the operator's clock; the timeline (timeline.py) uses the facts.

Message formats understood (Kubernetes 1.20 to 1.33):

    Pulled   Successfully pulled image "X" in 1.2s (1.5s including waiting). Image size: 123 bytes.   (1.30+)
    Pulled   Successfully pulled image "X" in 1.2s (1.5s including waiting)                          (1.28, 1.29)
    Pulled   Successfully pulled image "X" in 1.2s                                                   (older)
    Pulled   Container image "X" already present on machine[ and can be accessed by the pod]         (cache hit)
    Pulling  Pulling image "X"
    Failed   Failed to pull image "X": ... / Error: ErrImagePull / Error: ImagePullBackOff / Error: InvalidImageName
    BackOff  Back-off pulling image "X"... / Back-off restarting failed container ...
    Created  Created container workload / Created container: workload
    Started  Started container workload / Started container: workload
    Scheduled         Successfully assigned NS/POD to NODE
    FailedScheduling  0/3 nodes are available: 3 Insufficient nvidia.com/gpu. ...
    FailedToRetrieveImagePullSecret  Unable to retrieve some image pull secrets (a, b); attempting to pull the
                      image may not succeed.   (the kubelet, on the pod, for imagePullSecrets it cannot read)

The second pull duration includes the time the pull waited behind other pulls on the node; the first is the
pull itself. `parse_event` never raises: anything it does not recognise is a fact of kind OTHER.
"""

from __future__ import annotations

import dataclasses
import enum
import re

MAX_MESSAGE = 500


class FactKind(str, enum.Enum):
    SCHEDULED = "Scheduled"
    FAILED_SCHEDULING = "FailedScheduling"
    PULLING = "Pulling"
    PULLED = "Pulled"  # the kubelet pulled the image (a cache miss at image level)
    ALREADY_PRESENT = "AlreadyPresent"  # the image was on the node (a cache hit)
    PULL_FAILED = "ErrImagePull"
    PULL_BACKOFF = "ImagePullBackOff"
    INVALID_IMAGE = "InvalidImageName"
    IMAGE_NEVER_PULL = "ErrImageNeverPull"
    CREATED = "Created"
    STARTED = "Started"
    CRASH_BACKOFF = "CrashLoopBackOff"
    FAILED_OTHER = "Failed"  # a Failed event that is not about the image (e.g. the runtime refused the container)
    KILLING = "Killing"
    MISSING_PULL_SECRETS = "FailedToRetrieveImagePullSecret"  # the kubelet could not read some imagePullSecrets
    OTHER = "Other"


# Facts that end a run at once: retrying would only measure the kubelet's back-off.
FATAL_KINDS = frozenset({FactKind.PULL_FAILED, FactKind.PULL_BACKOFF, FactKind.INVALID_IMAGE,
                         FactKind.IMAGE_NEVER_PULL, FactKind.CRASH_BACKOFF, FactKind.FAILED_OTHER})


@dataclasses.dataclass(frozen=True)
class KubeletFact:
    kind: FactKind
    reason: str
    message: str
    image: str | None = None
    node: str | None = None  # Scheduled: the node the pod was bound to
    container: str | None = None
    pull_seconds: float | None = None  # the pull itself
    pull_with_wait_seconds: float | None = None  # the pull plus its wait behind other pulls
    image_size_bytes: int | None = None
    cache_hit: bool | None = None  # True: already present; False: pulled; None: not a pull result
    secrets: tuple[str, ...] = ()  # FailedToRetrieveImagePullSecret: the Secrets the kubelet could not read

    @property
    def fatal(self) -> bool:
        return self.kind in FATAL_KINDS


# --- Go durations (time.Duration.String and time.ParseDuration) ---------------------------------------------

_GO_UNITS = {"ns": 1e-9, "us": 1e-6, "µs": 1e-6, "μs": 1e-6, "ms": 1e-3, "s": 1.0, "m": 60.0, "h": 3600.0}
_GO_PART = re.compile(r"(\d+(?:\.\d*)?|\.\d+)(ns|us|µs|μs|ms|s|m|h)")
_GO_DURATION = re.compile(r"[-+]?(?:(?:\d+(?:\.\d*)?|\.\d+)(?:ns|us|µs|μs|ms|s|m|h))+|[-+]?0")


def parse_go_duration(text: str) -> float | None:
    """Seconds in a Go duration string (`1h2m3.5s`, `850ms`, `1.2µs`, `0s`, `0`); None if it is not one."""
    if not isinstance(text, str):
        return None
    text = text.strip()
    if not _GO_DURATION.fullmatch(text):
        return None
    sign = -1.0 if text.startswith("-") else 1.0
    body = text.lstrip("+-")
    if body == "0":
        return 0.0
    total = 0.0
    for number, unit in _GO_PART.findall(body):
        total += float(number) * _GO_UNITS[unit]
    return sign * total


# --- event messages -------------------------------------------------------------------------------------------

_DUR = r"([0-9.]+(?:ns|us|µs|μs|ms|s|m|h)(?:[0-9.]+(?:ns|us|µs|μs|ms|s|m|h))*)"
_PULLED = re.compile(
    r'Successfully pulled image "(?P<image>[^"]*)" in ' + _DUR
    + r'(?: \(' + _DUR + r' including waiting\))?'
    + r'(?:\.? ?Image size: (?P<size>\d+) bytes)?'
)
_PRESENT = re.compile(r'Container image "(?P<image>[^"]*)" already present on machine')
_PULLING = re.compile(r'Pulling image "(?P<image>[^"]*)"')
_QUOTED_IMAGE = re.compile(r'image "(?P<image>[^"]*)"')
_CONTAINER = re.compile(r"(?:Created|Started|Stopping) container:? (?P<name>[A-Za-z0-9_.-]+)")
_ASSIGNED = re.compile(r"Successfully assigned (?P<pod>\S+) to (?P<node>\S+)")
# pkg/kubelet/kubelet_pods.go getPullSecretsForPod: the names joined with ", " (Kubernetes 1.20 to 1.33).
_MISSING_SECRETS = re.compile(r"Unable to retrieve some image pull secrets \((?P<names>[^)]*)\)")


def _image(message: str) -> str | None:
    m = _QUOTED_IMAGE.search(message)
    return m.group("image") if m else None


def parse_event(reason: str | None, message: str | None) -> KubeletFact:
    """The fact a pod event states. Never raises; unknown events are FactKind.OTHER."""
    reason = reason if isinstance(reason, str) else ""
    message = message if isinstance(message, str) else ""
    short = message[:MAX_MESSAGE]
    fact = lambda kind, **kw: KubeletFact(kind=kind, reason=reason, message=short, **kw)  # noqa: E731

    if reason == "Scheduled":
        m = _ASSIGNED.search(message)
        return fact(FactKind.SCHEDULED, node=m.group("node") if m else None)
    if reason == "FailedScheduling":
        return fact(FactKind.FAILED_SCHEDULING)
    if reason == "Pulling":
        m = _PULLING.search(message)
        return fact(FactKind.PULLING, image=m.group("image") if m else _image(message))
    if reason == "Pulled":
        m = _PRESENT.search(message)
        if m:
            return fact(FactKind.ALREADY_PRESENT, image=m.group("image"), cache_hit=True)
        m = _PULLED.search(message)
        if m:
            size = m.group("size")
            return fact(FactKind.PULLED, image=m.group("image"), cache_hit=False,
                        pull_seconds=parse_go_duration(m.group(2)),
                        pull_with_wait_seconds=parse_go_duration(m.group(3)) if m.group(3) else None,
                        image_size_bytes=int(size) if size else None)
        return fact(FactKind.PULLED, image=_image(message), cache_hit=False)
    if reason in ("Failed", "InspectFailed", "ErrImageNeverPull", "BackOff"):
        if "InvalidImageName" in message or "invalid reference format" in message or reason == "InspectFailed":
            return fact(FactKind.INVALID_IMAGE, image=_image(message))
        if "ErrImageNeverPull" in message or reason == "ErrImageNeverPull" or "not present with pull policy of Never" in message:
            return fact(FactKind.IMAGE_NEVER_PULL, image=_image(message))
        if "ImagePullBackOff" in message or message.startswith("Back-off pulling image"):
            return fact(FactKind.PULL_BACKOFF, image=_image(message))
        if "ErrImagePull" in message or message.startswith("Failed to pull image"):
            return fact(FactKind.PULL_FAILED, image=_image(message))
        if reason == "BackOff":  # Back-off restarting failed container (only with restartPolicy other than Never)
            return fact(FactKind.CRASH_BACKOFF)
        return fact(FactKind.FAILED_OTHER)
    if reason == "FailedToRetrieveImagePullSecret":
        m = _MISSING_SECRETS.search(message)
        names = tuple(n.strip() for n in m.group("names").split(",") if n.strip()) if m else ()
        return fact(FactKind.MISSING_PULL_SECRETS, secrets=names)
    if reason in ("Created", "Started", "Killing"):
        m = _CONTAINER.search(message)
        kind = {"Created": FactKind.CREATED, "Started": FactKind.STARTED, "Killing": FactKind.KILLING}[reason]
        return fact(kind, container=m.group("name") if m else None)
    return fact(FactKind.OTHER)


# --- hints for a person --------------------------------------------------------------------------------------

_SCHEDULING_HINTS = (
    ("Insufficient nvidia.com/gpu",
     "no matching node has enough free GPUs: lower spec.nodes.gpusPerPod or spec.parallelism, or free GPUs on the nodes"),
    ("untolerated taint",
     "the nodes carry a taint the pod does not tolerate: add a matching entry to spec.nodes.tolerations"),
    ("didn't match Pod's node affinity/selector",
     "the run's node no longer matches: check the node still exists and carries the labels in spec.nodes.selector"),
    ("Insufficient cpu", "the node has no free CPU for the pod: lower spec.parallelism"),
    ("Insufficient memory", "the node has no free memory for the pod: lower spec.parallelism"),
)


def failure_hint(fact: KubeletFact) -> str:
    """What a person can change about a failing fact, in one sentence; empty when there is nothing to say."""
    if fact.kind is FactKind.FAILED_SCHEDULING:
        for needle, hint in _SCHEDULING_HINTS:
            if needle in fact.message:
                return hint
        return "the scheduler cannot place the pod: read the message and check spec.nodes"
    if fact.kind in (FactKind.PULL_FAILED, FactKind.PULL_BACKOFF):
        return ("the node could not pull the image: check the reference in spec.images, that the registry is "
                "reachable from the node, and spec.imagePullSecrets for a private registry")
    if fact.kind is FactKind.INVALID_IMAGE:
        return "the image reference does not parse: fix it in spec.images"
    if fact.kind is FactKind.IMAGE_NEVER_PULL:
        return "the image is not on the node and the pull policy forbids pulling it"
    return ""
