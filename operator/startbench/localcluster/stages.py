"""startbench's own KWOK Stage configuration: how a simulated pod moves through its life.

KWOK (v0.7) applies a Stage when its selector matches a pod on a node it manages, after the stage's delay.
Our stages are gated by annotations that the pull simulator (simkubelet.py) writes, because a pull's
duration depends on the image and on the other pulls in flight, which a static stage cannot know:

  sb-pod-create        pod bound, no IP yet        -> sandbox ready, container waiting ContainerCreating
  (simkubelet)         sandbox ready               -> decides hit / miss / not-found, models the pull,
                                                      emits Pulling/Pulled/Failed events, annotates `pulled`
  sb-container-start   image pulled                -> container running (the kubelet's create + start)
  sb-pull-error        pull failed                 -> waiting ErrImagePull
  sb-pull-backoff      ErrImagePull                -> waiting ImagePullBackOff
  sb-container-oom     running, annotated oom      -> terminated OOMKilled (exit 137), pod Failed
  sb-container-exit    running, restartPolicy Never-> terminated with the annotated exit code
                                                      (default 0: Completed, pod Succeeded)
  sb-pod-delete        deletionTimestamp set       -> deleted

KWOK's stage events carry a fixed message, while the kubelet's messages name the image, durations and
size; so the kubelet-shaped events come from simkubelet, not from these stages.
"""

from __future__ import annotations

import yaml

ANNOTATION_PREFIX = "sim.startbench.dev/"
PULL = ANNOTATION_PREFIX + "pull"                  # hit | miss | present (Always, all layers there) | failed
PULL_REASON = ANNOTATION_PREFIX + "pull-reason"    # the kubelet's waiting reason when a pull failed
PULLED = ANNOTATION_PREFIX + "pulled"              # set when the image is on the node (pull finished or hit)
OOM = ANNOTATION_PREFIX + "oom"                    # "true": the container runs out of memory
EXIT_CODE = ANNOTATION_PREFIX + "exit-code"        # exit code of a run-to-completion container (default 0)
RUN_DURATION = ANNOTATION_PREFIX + "run-duration"  # Go duration a run-to-completion container runs (default 1s)
START_DELAY = ANNOTATION_PREFIX + "start-delay"    # Go duration of create + start (default 200ms..600ms)
IMAGE_BYTES = ANNOTATION_PREFIX + "image-bytes"    # compressed size, for images no registry here holds
PULL_ERROR = ANNOTATION_PREFIX + "pull-error"      # the kubelet-shaped message of a failed pull
# Event loss on purpose, on a pod or on a node (for every pod there): the kubelet events this simulator would post
# for the pod are dropped (DROP_EVENTS: comma-separated reasons such as "Pulled,Started", or "all") or posted
# late (DELAY_EVENTS: a Go duration). A kubelet's recorder drops events too (a full queue, a refused write), and
# a watch may miss them: the operator's timeline must then name its fallback sources.
DROP_EVENTS = ANNOTATION_PREFIX + "drop-events"
DELAY_EVENTS = ANNOTATION_PREFIX + "delay-events"

_NOT_DELETED = {"key": ".metadata.deletionTimestamp", "operator": "DoesNotExist"}


def _ann(key: str) -> str:
    return f'.metadata.annotations["{key}"]'


def _stage(name: str, match: list[dict], next_: dict, delay_ms: int = 0, jitter_ms: int | None = None,
           delay_from: str | None = None) -> dict:
    delay: dict = {"durationMilliseconds": delay_ms}
    if jitter_ms is not None:
        delay["jitterDurationMilliseconds"] = jitter_ms
    if delay_from:
        delay["durationFrom"] = {"expressionFrom": delay_from}
    return {
        "apiVersion": "kwok.x-k8s.io/v1alpha1",
        "kind": "Stage",
        "metadata": {"name": name},
        "spec": {
            "resourceRef": {"apiGroup": "v1", "kind": "Pod"},
            "selector": {"matchExpressions": match},
            "weight": 1,
            "delay": delay,
            "next": next_,
        },
    }


# Go templates rendered by KWOK against the pod (as JSON: lower-case field names). The status patch
# replaces the conditions and container statuses whole.
_HEADER = """\
{{ $now := Now }}
{{ $scheduled := $now }}
{{ range .status.conditions }}{{ if eq .type "PodScheduled" }}{{ $scheduled = .lastTransitionTime }}{{ end }}{{ end }}
{{ $ann := or .metadata.annotations dict }}
"""


def _conditions(ready: bool, reason: str = "") -> str:
    status = '"True"' if ready else '"False"'
    lines = ["conditions:"]
    for ctype, st, why in (("PodReadyToStartContainers", '"True"', ""), ("Initialized", '"True"', ""),
                           ("Ready", status, reason), ("ContainersReady", status, reason)):
        lines += [f"- type: {ctype}", f"  status: {st}", "  lastProbeTime: null",
                  "  lastTransitionTime: {{ $now | Quote }}"]
        if why:
            lines.append(f"  reason: {why}")
    lines += ["- type: PodScheduled", '  status: "True"', "  lastProbeTime: null",
              "  lastTransitionTime: {{ $scheduled | Quote }}"]
    return "\n".join(lines) + "\n"


def _containers(state: str) -> str:
    """containerStatuses for every container, each in `state` (a template fragment: ready/started/state)."""
    return (
        "containerStatuses:\n"
        "{{ range .spec.containers }}\n"
        "- image: {{ .image | Quote }}\n"
        "  imageID: \"\"\n"
        "  name: {{ .name | Quote }}\n"
        "  restartCount: 0\n"
        f"{state}"
        "{{ end }}\n"
    )


def _waiting(reason: str, message: str | None = None) -> str:
    msg = f"      message: {message}\n" if message else ""
    return ("  ready: false\n  started: false\n  state:\n    waiting:\n"
            f"      reason: {reason}\n{msg}")


def pod_stages() -> list[dict]:
    create = _stage(
        "sb-pod-create",
        [_NOT_DELETED, {"key": ".status.podIP", "operator": "DoesNotExist"}],
        {"statusTemplate": _HEADER + _conditions(False, "ContainersNotReady")
            + _containers(_waiting("ContainerCreating"))
            + "hostIP: {{ NodeIPWith .spec.nodeName | Quote }}\n"
            + "podIP: {{ PodIPWith .spec.nodeName ( or .spec.hostNetwork false ) ( or .metadata.uid \"\" )"
              " ( or .metadata.name \"\" ) ( or .metadata.namespace \"\" ) | Quote }}\n"
            + "phase: Pending\nstartTime: {{ $now | Quote }}\n"},
        # The kubelet's sandbox setup: admission, cgroups, network namespace.
        delay_ms=50, jitter_ms=150)

    running_state = (
        "  ready: true\n  started: true\n  state:\n    running:\n      startedAt: {{ $now | Quote }}\n")
    start = _stage(
        "sb-container-start",
        [_NOT_DELETED,
         {"key": _ann(PULLED), "operator": "Exists"},
         {"key": ".status.containerStatuses.[].state.waiting.reason", "operator": "In",
          "values": ["ContainerCreating"]}],
        {"statusTemplate": _HEADER + _conditions(True) + _containers(running_state) + "phase: Running\n"},
        delay_ms=200, jitter_ms=600, delay_from=_ann(START_DELAY))

    pull_error = _stage(
        "sb-pull-error",
        [_NOT_DELETED,
         {"key": _ann(PULL_REASON), "operator": "Exists"},
         {"key": ".status.containerStatuses.[].state.waiting.reason", "operator": "In",
          "values": ["ContainerCreating"]}],
        {"statusTemplate": _HEADER + _conditions(False, "ContainersNotReady")
            + _containers(_waiting(
                '{{ index $ann "%s" }}' % PULL_REASON,
                '{{ index $ann "%s" | Quote }}' % PULL_ERROR))
            + "phase: Pending\n"})

    backoff = _stage(
        "sb-pull-backoff",
        [_NOT_DELETED,
         {"key": ".status.containerStatuses.[].state.waiting.reason", "operator": "In", "values": ["ErrImagePull"]}],
        {"statusTemplate": _HEADER + _conditions(False, "ContainersNotReady")
            + _containers(_waiting("ImagePullBackOff", "{{ printf \"Back-off pulling image %q\" .image | Quote }}"))
            + "phase: Pending\n"},
        delay_ms=1000, jitter_ms=2000)

    def terminated(reason: str, exit_code: str) -> str:
        return ("  ready: false\n  started: false\n  state:\n    terminated:\n"
                f"      exitCode: {exit_code}\n      reason: {reason}\n"
                "      startedAt: {{ $now | Quote }}\n      finishedAt: {{ $now | Quote }}\n")

    oom = _stage(
        "sb-container-oom",
        [_NOT_DELETED, {"key": ".status.phase", "operator": "In", "values": ["Running"]},
         {"key": _ann(OOM), "operator": "In", "values": ["true"]}],
        {"statusTemplate": _HEADER + _conditions(False, "PodFailed") + _containers(terminated("OOMKilled", "137"))
            + "phase: Failed\n"},
        delay_ms=500, delay_from=_ann(RUN_DURATION))

    exit_code = f'or (index $ann "{EXIT_CODE}") "0"'
    exited = _stage(
        "sb-container-exit",
        [_NOT_DELETED, {"key": ".status.phase", "operator": "In", "values": ["Running"]},
         {"key": ".spec.restartPolicy", "operator": "In", "values": ["Never", "OnFailure"]},
         {"key": _ann(OOM), "operator": "DoesNotExist"}],
        {"statusTemplate": _HEADER
            + "{{ $code := %s }}\n" % exit_code
            + "{{ $ok := eq $code \"0\" }}\n"
            + _conditions(False, "PodCompleted")
            + _containers(terminated('{{ if $ok }}Completed{{ else }}Error{{ end }}', "{{ $code }}"))
            + "phase: {{ if $ok }}Succeeded{{ else }}Failed{{ end }}\n"},
        delay_ms=1000, delay_from=_ann(RUN_DURATION))

    delete = _stage(
        "sb-pod-delete",
        [{"key": ".metadata.deletionTimestamp", "operator": "Exists"}],
        {"delete": True, "finalizers": {"empty": True}},
        delay_ms=0)
    return [create, start, pull_error, backoff, oom, exited, delete]


def config_yaml() -> str:
    """The file given to `kwok --config`: our pod stages (node stages stay KWOK's defaults)."""
    return yaml.safe_dump_all(pod_stages(), sort_keys=False)
