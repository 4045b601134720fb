"""The pull simulator: the part of a kubelet that KWOK does not simulate.

It watches pods bound to simulated nodes. When KWOK has set up a pod's sandbox (stage sb-pod-create), it
decides, like the kubelet's image manager, whether the image must be pulled (pull policy and the node's
image cache), resolves the image in the real local registry to learn its compressed size, models the pull
(pullmodel.py: node bandwidth, shared registry bandwidth, one pull at a time per node), and emits the
kubelet's events with the kubelet's messages. It records the outcome in pod annotations that gate our KWOK
stages (stages.py), and keeps each node's image cache in a node annotation.

Run it as `python -m startbench.localcluster.simkubelet --kubeconfig PATH` (`startbench cluster up` does).
"""

from __future__ import annotations

import argparse
import base64
import dataclasses
import datetime
import json
import logging
import re
import threading
import time
import uuid

from kubernetes import client, config, watch
from kubernetes.client.rest import ApiException

from startbench.core.contracts import is_simulated
from startbench.core.kubelet_events import parse_go_duration
from startbench.core.reference import normalize
from startbench.localcluster import imageref, nodes, stages
from startbench.localcluster.pullmodel import PullModel, go_duration, pulled_message

log = logging.getLogger("simkubelet")
KUBELET = "kubelet"  # the kubelet's event source component, reporting component and field manager


@dataclasses.dataclass
class PendingPull:
    namespace: str
    name: str
    uid: str
    node: str
    image: str
    container: str
    size_bytes: int
    queued_wall: float
    resource_version: str | None = None  # the pod's, as the kubelet's reference to it carries


def images_status(images: set[str], sizes: dict[str, int]) -> list[dict]:
    """`node.status.images` for a cache: each image under its fully qualified name, as containerd lists it."""
    return [{"names": [normalize(image)], "sizeBytes": int(sizes.get(image, 0))} for image in sorted(images)]


_DNS_SUBDOMAIN = re.compile(r"[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*")


def event_name(ref_name: str, unix_nano: int) -> str:
    """The name the kubelet gives an event (client-go tools/record util.GenerateEventName): the object's name and
    the event's time in Unix nanoseconds as lower-case hex, `<pod>.<hex>`; a random UUID where that is not a valid
    DNS subdomain. Clients read the time back from the name (kube-burner's ContainersStarted does)."""
    name = f"{ref_name}.{unix_nano:x}"
    if len(name) > 253 or not _DNS_SUBDOMAIN.fullmatch(name):
        return str(uuid.uuid4())
    return name


def _rfc3339(unix_nano: int) -> str:
    """The instant `unix_nano` as a metav1.Time travels: RFC 3339 in whole seconds, the fraction cut off."""
    moment = datetime.datetime.fromtimestamp(unix_nano // 1_000_000_000, datetime.timezone.utc)
    return moment.strftime("%Y-%m-%dT%H:%M:%SZ")


def event_body(ref: client.V1ObjectReference, node: str, type_: str, reason: str, message: str,
               unix_nano: int) -> client.CoreV1Event:
    """A core/v1 Event filled as the kubelet's recorder fills its own (client-go tools/record, makeEvent and
    generateEvent): named from its time, first and last timestamp that time, count 1, source and reporting
    fields from the component `kubelet` on `node`, no eventTime, action, series or related object."""
    now = _rfc3339(unix_nano)
    return client.CoreV1Event(
        metadata=client.V1ObjectMeta(name=event_name(ref.name, unix_nano), namespace=ref.namespace or "default"),
        involved_object=ref, reason=reason, message=message, type=type_, count=1,
        first_timestamp=now, last_timestamp=now, event_time=None,
        source=client.V1EventSource(component=KUBELET, host=node),
        reporting_component=KUBELET, reporting_instance=node)


def container_ref(namespace: str, name: str, uid: str, resource_version: str | None,
                  container: str) -> client.V1ObjectReference:
    """The kubelet's reference to a pod's container (kubecontainer.GenerateContainerRef): the pod's reference,
    resourceVersion included, with the container's field path."""
    return client.V1ObjectReference(api_version="v1", kind="Pod", namespace=namespace, name=name, uid=uid,
                                    resource_version=resource_version, field_path=f"spec.containers{{{container}}}")


@dataclasses.dataclass(frozen=True)
class EventSwitch:
    """What stages.DROP_EVENTS and DELAY_EVENTS say, on a pod or a node."""
    drop: frozenset[str] = frozenset()
    delay_seconds: float = 0.0

    @classmethod
    def read(cls, annotations: dict[str, str] | None) -> "EventSwitch":
        annotations = annotations or {}
        drop = frozenset(r.strip() for r in annotations.get(stages.DROP_EVENTS, "").split(",") if r.strip())
        delay = parse_go_duration(annotations.get(stages.DELAY_EVENTS, "")) or 0.0
        return cls(drop, max(0.0, delay))

    @property
    def active(self) -> bool:
        return bool(self.drop) or self.delay_seconds > 0

    def drops(self, reason: str) -> bool:
        return reason in self.drop or "all" in self.drop


class SimKubelet:
    def __init__(self, core: client.CoreV1Api, registry: imageref.RegistryClient | None = None,
                 registry_bandwidth: float = 1_250_000_000.0):
        self.core = core
        self.registry = registry or imageref.RegistryClient()
        self.model = PullModel(registry_bandwidth=registry_bandwidth)
        self.node_images: dict[str, set[str]] = {}
        self.image_sizes: dict[str, int] = {}        # image -> compressed bytes, for node.status.images
        self.listed: dict[str, list[dict]] = {}      # node -> the status.images last seen or written
        self.pending: dict[str, PendingPull] = {}   # pod uid -> pull in flight
        self.emitted: set[tuple[str, str]] = set()  # (pod uid, event key) already reported
        # Event loss on purpose (stages.DROP_EVENTS, DELAY_EVENTS): each pod's and each node's switch.
        self.pod_switch: dict[str, EventSwitch] = {}   # pod uid ->
        self.node_switch: dict[str, EventSwitch] = {}  # node name ->
        self.released: set[tuple[str, str]] = set()    # delayed events whose delay is over
        self.dropped = 0
        self.unplaced: dict[str, dict[str, client.V1Pod]] = {}  # node -> pods seen before their node, by uid
        self.lock = threading.RLock()
        self.wakeup = threading.Event()
        self.stopping = threading.Event()
        self.epoch = time.monotonic()

    # ---- clock: the model runs on monotonic seconds since start
    def _t(self) -> float:
        return time.monotonic() - self.epoch

    # ---- nodes
    def on_node(self, kind: str, node: client.V1Node) -> None:
        annotations = node.metadata.annotations or {}
        if not is_simulated(annotations):
            return
        name = node.metadata.name
        with self.lock:
            if kind == "DELETED":
                self.node_images.pop(name, None)
                return
            try:
                self.model.node_bandwidth[name] = float(annotations.get(nodes.PULL_BANDWIDTH, "125000000"))
            except ValueError:
                log.warning("node %s: %s is not a number; using the default", name, nodes.PULL_BANDWIDTH)
            try:
                self.node_images[name] = set(json.loads(annotations.get(nodes.CACHED_IMAGES, "[]")))
            except ValueError:
                self.node_images[name] = set()
            self.listed[name] = [{"names": list(i.names or []), "sizeBytes": i.size_bytes or 0}
                                 for i in (node.status.images if node.status else None) or []]
            self.node_switch[name] = EventSwitch.read(annotations)
            self._list_images(name)
            # Pods listed before their node (a restarted simulator lists a thousand nodes and the pods at once):
            # handled now, or they would wait for an update that never comes.
            for pod in self.unplaced.pop(name, {}).values():
                self.on_pod("MODIFIED", pod)

    def _list_images(self, node: str) -> None:
        """Keep the node's `status.images` equal to its cache, as a kubelet lists what its runtime holds: clients
        (the operator's cache evidence among them) read a simulated node as they read a real one. A purge edits
        the cache annotation; the list follows on the node watch."""
        wanted = images_status(self.node_images.get(node, set()), self.image_sizes)
        if wanted == self.listed.get(node):
            return
        try:
            self.core.patch_node_status(node, {"status": {"images": wanted}})
            self.listed[node] = wanted
        except ApiException as err:
            log.warning("node %s: could not list its images: %s", node, err.reason)

    # ---- pods
    def on_pod(self, kind: str, pod: client.V1Pod) -> None:
        node = pod.spec.node_name
        if kind == "DELETED" or not node:
            with self.lock:
                self.pending.pop(pod.metadata.uid, None)
                self.pod_switch.pop(pod.metadata.uid, None)
                self.unplaced.get(node or "", {}).pop(pod.metadata.uid, None)
            return
        with self.lock:
            if pod.metadata.deletion_timestamp:
                return
            if node not in self.node_images:
                self.unplaced.setdefault(node, {})[pod.metadata.uid] = pod
                return
            annotations = pod.metadata.annotations or {}
            switch = EventSwitch.read(annotations)
            if switch.active:
                self.pod_switch[pod.metadata.uid] = switch
            statuses = pod.status.container_statuses or []
            container = pod.spec.containers[0]
            waiting = statuses[0].state.waiting if statuses and statuses[0].state else None
            if (pod.status.pod_ip and waiting and waiting.reason == "ContainerCreating"
                    and stages.PULLED not in annotations and stages.PULL_REASON not in annotations
                    and pod.metadata.uid not in self.pending):
                self._decide(pod, node, container)
            for status in statuses:
                self._report_container(pod, node, status)

    def _decide(self, pod: client.V1Pod, node: str, container: client.V1Container) -> None:
        image = container.image
        configs = self._pull_secrets(pod, node)
        policy = container.image_pull_policy or imageref.default_pull_policy(image)
        present = image in self.node_images.get(node, set())
        annotations = pod.metadata.annotations or {}
        if policy == "Never" or (policy == "IfNotPresent" and present):
            if present:
                self._event(pod, node, container, "Normal", "Pulled", f'Container image "{image}" already present on machine')
                self._annotate(pod, {stages.PULL: "hit", stages.PULLED: "0s"})
            else:
                self._event(pod, node, container, "Warning", "ErrImageNeverPull",
                            f'Container image "{image}" is not present with pull policy of Never')
                self._fail(pod, node, container, "ErrImageNeverPull",
                           f'Container image "{image}" is not present with pull policy of Never')
            return
        try:
            imageref.parse(image)
        except imageref.RegistryError as err:
            self._event(pod, node, container, "Warning", "InspectFailed", str(err))
            self._fail(pod, node, container, "InvalidImageName", str(err))
            return
        self._event(pod, node, container, "Normal", "Pulling", f'Pulling image "{image}"')
        try:
            if stages.IMAGE_BYTES in annotations:
                size = int(annotations[stages.IMAGE_BYTES])
            else:
                size = self.registry.pull_bytes(image, imageref.credentials_for(imageref.parse(image).host, configs))
        except (imageref.RegistryError, ValueError) as err:
            self._event(pod, node, container, "Warning", "Failed", f'Failed to pull image "{image}": {err}',
                        key="Failed/pull")
            self._fail(pod, node, container, "ErrImagePull", str(err))
            return
        self._annotate(pod, {stages.PULL: "present" if present else "miss"})
        self.pending[pod.metadata.uid] = PendingPull(pod.metadata.namespace, pod.metadata.name, pod.metadata.uid,
                                                     node, image, container.name, size, time.time(),
                                                     pod.metadata.resource_version)
        # Pull policy Always on a node that has every layer: the kubelet resolves the manifest and transfers
        # nothing, yet reports a successful pull of the image's full size.
        self.model.enqueue(pod.metadata.uid, node, image, 0 if present else size, self._t())
        self.wakeup.set()

    def _fail(self, pod, node, container, reason: str, message: str) -> None:
        self._event(pod, node, container, "Warning", "Failed", f"Error: {reason}", key=f"Failed/{reason}")
        self._annotate(pod, {stages.PULL: "failed", stages.PULL_REASON: reason, stages.PULL_ERROR: message[:1000]})

    def _pull_secrets(self, pod: client.V1Pod, node: str) -> list[dict]:
        """The docker configs of the pod's imagePullSecrets, read as the kubelet reads them before it syncs the
        pod (getPullSecretsForPod): each one it cannot read is named in its Warning event, in its words, and the
        pull goes ahead without it."""
        configs, missing = [], []
        for ref in pod.spec.image_pull_secrets or []:
            if not ref.name:
                continue  # the kubelet skips entries without a name, without a warning
            try:
                secret = self.core.read_namespaced_secret(ref.name, pod.metadata.namespace)
            except ApiException:
                missing.append(ref.name)
                continue
            data = (secret.data or {}).get(".dockerconfigjson")
            if data:
                try:
                    configs.append(json.loads(base64.b64decode(data)))
                except ValueError:
                    continue
        if missing:
            ref = client.V1ObjectReference(api_version="v1", kind="Pod", namespace=pod.metadata.namespace,
                                           name=pod.metadata.name, uid=pod.metadata.uid,
                                           resource_version=pod.metadata.resource_version)
            reason = "FailedToRetrieveImagePullSecret"
            self._post_event(ref, node, "Warning", reason, missing_pull_secrets_message(missing),
                             (pod.metadata.uid, reason))
        return configs

    def _report_container(self, pod: client.V1Pod, node: str, status: client.V1ContainerStatus) -> None:
        state = status.state
        container = next((c for c in pod.spec.containers if c.name == status.name), pod.spec.containers[0])
        if state and state.running:
            self._event(pod, node, container, "Normal", "Created", f"Created container: {status.name}")
            self._event(pod, node, container, "Normal", "Started", f"Started container {status.name}")
        elif state and state.waiting and state.waiting.reason == "ImagePullBackOff":
            self._event(pod, node, container, "Normal", "BackOff", f'Back-off pulling image "{container.image}"')
            self._event(pod, node, container, "Warning", "Failed", "Error: ImagePullBackOff", key="Failed/backoff")

    # ---- pulls finishing
    def tick(self) -> float | None:
        """Finish the pulls that are due; return seconds until the next one (None when idle)."""
        with self.lock:
            now = self._t()
            for finished in self.model.advance(now):
                pending = self.pending.pop(finished.key, None)
                if pending is None:
                    continue  # the pod went away mid-pull
                pull_seconds = finished.finished_at - finished.started_at
                total_seconds = finished.finished_at - finished.queued_at
                self._finish(pending, pull_seconds, total_seconds)
            nxt = self.model.next_finish()
            return None if nxt is None else max(0.0, nxt - self._t())

    def _finish(self, pending: PendingPull, pull_seconds: float, total_seconds: float) -> None:
        images = self.node_images.setdefault(pending.node, set())
        images.add(pending.image)
        self.image_sizes[pending.image] = pending.size_bytes or self.image_sizes.get(pending.image, 0)
        try:
            self.core.patch_node(pending.node, {"metadata": {"annotations": {
                nodes.CACHED_IMAGES: json.dumps(sorted(images))}}})
        except ApiException as err:
            log.warning("node %s: could not record image cache: %s", pending.node, err.reason)
        self._list_images(pending.node)
        ref = container_ref(pending.namespace, pending.name, pending.uid, pending.resource_version,
                            pending.container)
        self._post_event(ref, pending.node, "Normal", "Pulled",
                         pulled_message(pending.image, pull_seconds, total_seconds, pending.size_bytes),
                         (pending.uid, "Pulled"))
        try:
            self.core.patch_namespaced_pod(pending.name, pending.namespace, {"metadata": {"annotations": {
                stages.PULLED: go_duration(pull_seconds)}}})
        except ApiException as err:
            if err.status != 404:
                log.warning("pod %s/%s: could not mark pulled: %s", pending.namespace, pending.name, err.reason)

    # ---- API writes
    def _annotate(self, pod: client.V1Pod, annotations: dict[str, str]) -> None:
        try:
            self.core.patch_namespaced_pod(pod.metadata.name, pod.metadata.namespace,
                                           {"metadata": {"annotations": annotations}})
        except ApiException as err:
            if err.status != 404:
                log.warning("pod %s/%s: could not annotate: %s", pod.metadata.namespace, pod.metadata.name, err.reason)

    def _event(self, pod, node, container, type_: str, reason: str, message: str, key: str | None = None) -> None:
        ref = container_ref(pod.metadata.namespace, pod.metadata.name, pod.metadata.uid,
                            pod.metadata.resource_version, container.name)
        self._post_event(ref, node, type_, reason, message, (pod.metadata.uid, key or reason))

    def _post_event(self, ref, node: str, type_: str, reason: str, message: str, dedupe: tuple[str, str]) -> None:
        if dedupe in self.emitted:
            return
        self.emitted.add(dedupe)
        if self._held_back(ref, node, type_, reason, message, dedupe):
            return
        body = event_body(ref, node, type_, reason, message, time.time_ns())
        try:
            # Under the kubelet's field manager, so that managedFields, too, read as the kubelet's.
            self.core.create_namespaced_event(body.metadata.namespace, body, field_manager=KUBELET)
        except ApiException as err:
            log.warning("could not post event %s for %s/%s: %s", reason, ref.namespace, ref.name, err.reason)

    def _held_back(self, ref, node: str, type_: str, reason: str, message: str, dedupe: tuple[str, str]) -> bool:
        """Event loss on purpose: True when the pod's switch (else its node's) drops this event, or delays it (it
        is then posted from a timer)."""
        if dedupe in self.released:
            return False
        switch = self.pod_switch.get(ref.uid) or self.node_switch.get(node) or EventSwitch()
        if switch.drops(reason):
            self.dropped += 1
            log.info("dropped event %s of %s/%s on purpose (%s)", reason, ref.namespace, ref.name, stages.DROP_EVENTS)
            return True
        if switch.delay_seconds > 0:
            def release() -> None:
                with self.lock:
                    self.released.add(dedupe)
                    self.emitted.discard(dedupe)
                    self._post_event(ref, node, type_, reason, message, dedupe)

            timer = threading.Timer(switch.delay_seconds, release)
            timer.daemon = True
            timer.start()
            return True
        return False

    # ---- loops
    def _watch(self, list_fn, handler, name: str) -> None:
        while not self.stopping.is_set():
            try:
                listing = list_fn(_preload_content=True)
                for item in listing.items:
                    handler("ADDED", item)
                w = watch.Watch()
                for event in w.stream(list_fn, resource_version=listing.metadata.resource_version,
                                      timeout_seconds=300):
                    handler(event["type"], event["object"])
                    if self.stopping.is_set():
                        w.stop()
            except Exception as err:  # a dropped watch is re-listed, never fatal
                log.info("%s watch restarted: %s", name, err)
                time.sleep(0.5)

    def run(self) -> None:
        threading.Thread(target=self._watch, args=(self.core.list_node, self.on_node, "node"), daemon=True).start()
        time.sleep(0.5)  # nodes first, so the first pods find their node
        threading.Thread(target=self._watch, args=(self.core.list_pod_for_all_namespaces, self.on_pod, "pod"),
                         daemon=True).start()
        while not self.stopping.is_set():
            wait = self.tick()
            self.wakeup.wait(timeout=0.5 if wait is None else min(wait + 0.001, 0.5))
            self.wakeup.clear()


def missing_pull_secrets_message(names: list[str]) -> str:
    """The kubelet's message for imagePullSecrets it cannot read (pkg/kubelet/kubelet_pods.go, 1.20 to 1.33)."""
    return (f"Unable to retrieve some image pull secrets ({', '.join(names)}); attempting to pull the image may not "
            "succeed.")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="simkubelet", description=__doc__.splitlines()[0])
    parser.add_argument("--kubeconfig", required=True)
    parser.add_argument("--registry-bandwidth", type=float, default=1_250_000_000.0,
                        help="bytes per second the registry serves to all nodes together (default 10 Gbit/s)")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(levelname)s %(message)s")
    config.load_kube_config(args.kubeconfig)
    configuration = client.Configuration.get_default_copy()
    configuration.connection_pool_maxsize = 32
    core = client.CoreV1Api(client.ApiClient(configuration))
    log.info("pull simulator started (registry bandwidth %.0f B/s)", args.registry_bandwidth)
    SimKubelet(core, registry_bandwidth=args.registry_bandwidth).run()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
