"""The Helm chart installed on the local cluster as a user installs it: the operator built into its own image with
`startbench images build`, `helm install` with it scheduled on the real node, the dind builder, and the tools a
user has (helm, kubectl). Used by tests/cluster/test_chart_e2e.py and bench/ha_takeover.py."""

from __future__ import annotations

import dataclasses
import json
import os
import subprocess
import sys
import threading
import time
from pathlib import Path

import yaml

from startbench.localcluster import clusternet, paths, realnode

REPO = Path(__file__).resolve().parents[2]
CHART = REPO / "charts" / "startbench"
OPERATOR_REPOSITORY = "127.0.0.1:5000/startbench-operator"
BASE_IMAGE = "127.0.0.1:5000/startbench/base:bookworm"
# What pods reach of this machine's registry (clusternet forwards it); images built in the cluster go there.
POD_REGISTRY = f"{realnode.NODE_IP}:{clusternet.REGISTRY_PORT}"
RUN_LABEL = "startbench.dev/benchmark"


def _transient(err: Exception) -> bool:
    """The API server was away (restarted by another test of the shared cluster) or briefly unable to answer."""
    from kubernetes.client.rest import ApiException
    from urllib3.exceptions import HTTPError

    if isinstance(err, ApiException):
        return err.status in (0, 429, 500, 502, 503, 504)
    return isinstance(err, (HTTPError, ConnectionError, OSError))


def retrying(fn, *args, timeout: float = 90, **kwargs):
    """fn(*args, **kwargs), tried again while the API server is away (up to `timeout` seconds)."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            return fn(*args, **kwargs)
        except Exception as err:  # noqa: BLE001
            if not _transient(err) or time.monotonic() > deadline:
                raise
            time.sleep(1)


def wait_finished(custom, namespace: str, name: str, timeout: float = 300) -> dict:
    """The Benchmark once it has ended, riding out API server restarts."""
    from tests.cluster.benchmarks import TERMINAL, get
    from tests.cluster.helpers import wait_for

    def ended():
        body = retrying(get, custom, namespace, name)
        return body.get("status", {}).get("phase") in TERMINAL and body
    return wait_for(ended, timeout=timeout, interval=1, what=f"benchmark {name} to finish")


def records(core, namespace: str, name: str) -> list[dict]:
    from tests.cluster.benchmarks import records as read
    return retrying(read, core, namespace, name)


def host_ca_bundle() -> Path | None:
    for candidate in (os.environ.get("PIP_CERT"), os.environ.get("SSL_CERT_FILE"), "/etc/ssl/certs/ca-certificates.crt"):
        if candidate and Path(candidate).is_file():
            return Path(candidate)
    return None


def build_operator_image() -> str:
    """`startbench images build --framework operator --variant slim --push 127.0.0.1:5000` (on the local base
    image, with this machine's CA bundle for pip); returns the pushed digest."""
    ca = host_ca_bundle()
    done = subprocess.run(
        [sys.executable, "-m", "startbench", "images", "build", "--framework", "operator", "--variant", "slim",
         "--push", "127.0.0.1:5000", "--base-image", BASE_IMAGE, "--format", "json",
         *(["--ca-bundle", str(ca)] if ca else [])],
        capture_output=True, text=True, timeout=1800, env={**os.environ, "PYTHONPATH": str(REPO / "operator")})
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    record = json.loads(done.stdout)
    assert record["reference"] == f"{OPERATOR_REPOSITORY}:slim-cpu", record
    return record["digest"]


def values(digest: str, watch: list[str], *, builder: bool = False, build_namespace: str = "",
           replicas: int = 2) -> dict:
    """Chart values: the operator image by digest, on the real node (its taint tolerated, its pool selected)."""
    out: dict = {
        "image": {"repository": OPERATOR_REPOSITORY, "digest": digest},
        "replicaCount": replicas,
        "operator": {"watchNamespaces": watch, "nodeSelector": {"startbench.dev/pool": "real"},
                     "tolerations": [realnode.TOLERATION],
                     "resources": {"requests": {"cpu": "50m", "memory": "128Mi"}, "limits": {"memory": "512Mi"}}},
    }
    if builder:
        from startbench.localcluster import dindimage
        repository, _, tag = dindimage.REFERENCE.rpartition(":")
        out["builder"] = {"enabled": True, "image": {"repository": repository, "tag": tag},
                          "insecureRegistries": [POD_REGISTRY],
                          "resources": {"requests": {"cpu": "100m", "memory": "256Mi"}, "limits": {"memory": "4Gi"}}}
        out["build"] = {"registry": f"{POD_REGISTRY}/{build_namespace}",
                        "baseImage": f"{POD_REGISTRY}/startbench/base:bookworm"}
    return out


# The API server was not there to answer (the shared local cluster restarts a component now and then): the
# request never reached it, so trying again cannot do a thing twice.
UNREACHABLE = ("connection refused", "was refused", "unexpected eof", "connection reset", "i/o timeout",
               "tls handshake timeout", "no route to host")


def run(*argv: str, timeout: float = 300, check: bool = True, input: str | None = None, retry_s: float = 60) -> str:
    deadline = time.monotonic() + retry_s
    while True:
        done = subprocess.run(list(argv), capture_output=True, text=True, timeout=timeout, input=input)
        unreachable = done.returncode != 0 and any(u in done.stderr.lower() for u in UNREACHABLE)
        if not unreachable or time.monotonic() > deadline:
            break
        time.sleep(2)
    if check:
        assert done.returncode == 0, f"{' '.join(argv[:4])}...: {done.stdout[-2000:]}{done.stderr[-2000:]}"
    return done.stdout


@dataclasses.dataclass
class Release:
    name: str
    namespace: str
    kubeconfig: str

    @property
    def fullname(self) -> str:  # the chart's "<release>-startbench"; also the Lease's name
        return f"{self.name}-startbench"

    @property
    def selector(self) -> str:
        return f"app.kubernetes.io/instance={self.name},app.kubernetes.io/name=startbench"

    def helm(self, *args: str, timeout: float = 600, check: bool = True) -> str:
        return run(str(paths.binaries().helm), *args, "--namespace", self.namespace, "--kubeconfig", self.kubeconfig,
                   timeout=timeout, check=check)

    def kubectl(self, *args: str, timeout: float = 120, check: bool = True, input: str | None = None) -> str:
        return run(str(paths.binaries().kubectl), "--kubeconfig", self.kubeconfig, *args, timeout=timeout,
                   check=check, input=input)

    def install(self, vals: dict, tmp: Path, *extra: str, command: str = "install") -> str:
        path = tmp / f"{self.name}-values.yaml"
        path.write_text(yaml.safe_dump(vals))
        ca = host_ca_bundle()
        ca_args = ["--set-file", f"build.caBundle.pem={ca}"] if ca and vals.get("build") else []
        return self.helm(command, self.name, str(CHART), "-f", str(path), *ca_args, *extra, "--wait",
                         "--timeout", "6m", timeout=420)

    def operator_pods(self, core) -> list:
        listed = retrying(core.list_namespaced_pod, self.namespace, label_selector=self.selector).items
        return [p for p in listed if p.metadata.deletion_timestamp is None]

    def lease_holder(self, coordination) -> str:
        """The holder identity of the release's Lease ('' when released or absent)."""
        try:
            return coordination.read_namespaced_lease(self.fullname, self.namespace).spec.holder_identity or ""
        except Exception:  # noqa: BLE001 - not created yet
            return ""

    def leader(self, coordination) -> str:
        """The pod name of the replica that leads (its identity is `<pod>_<random>`)."""
        return self.lease_holder(coordination).rpartition("_")[0]


def forget_built_image(repository: str, tag: str) -> None:
    """Remove an image the operator built (under POD_REGISTRY) from the real node and from the registry's index,
    best effort: each test run builds its own, and they would pile up."""
    import urllib.request

    try:
        realnode.remove_image(f"{POD_REGISTRY}/{repository}:{tag}", wait_s=60)
    except Exception:  # noqa: BLE001 - already gone, or still in use: the kubelet's image GC has it
        pass
    accept = "application/vnd.docker.distribution.manifest.v2+json, application/vnd.oci.image.manifest.v1+json"
    base = f"http://127.0.0.1:{clusternet.REGISTRY_PORT}/v2/{repository}/manifests"
    try:
        with urllib.request.urlopen(urllib.request.Request(f"{base}/{tag}", method="HEAD", headers={"Accept": accept}),
                                    timeout=10) as resp:
            digest = resp.headers["Docker-Content-Digest"]
        urllib.request.urlopen(urllib.request.Request(f"{base}/{digest}", method="DELETE"), timeout=10)
    except OSError:
        pass


def kill_container_process(core, namespace: str, pod: str, container: str = "operator") -> float:
    """SIGKILL the container's main process on the real node (a crash, not a shutdown: nothing runs after it).
    Returns time.monotonic() at the kill."""
    status = next(s for s in retrying(core.read_namespaced_pod, pod, namespace).status.container_statuses
                  if s.name == container)
    cid = status.container_id.split("://", 1)[1]
    lay = realnode.layout()
    listed = subprocess.run(["ctr", "--address", str(lay.socket), "-n", "k8s.io", "tasks", "ls"], capture_output=True,
                            text=True, timeout=30).stdout
    pid = next(int(line.split()[1]) for line in listed.splitlines()[1:] if line.split()[0] == cid)
    t = time.monotonic()
    os.kill(pid, 9)
    return t


class PodWatch:
    """Every run pod of a namespace as the API server announces it: name -> the UIDs seen (a pod created twice
    under its deterministic name would show two) and when each was first seen (time.monotonic())."""

    def __init__(self, kube_api, namespace: str):
        from kubernetes import client, watch

        self.uids: dict[str, set[str]] = {}
        self.first_seen: dict[str, float] = {}
        self._stop = threading.Event()
        core = client.CoreV1Api(kube_api)

        def loop():
            while not self._stop.is_set():
                w = watch.Watch()
                try:
                    for event in w.stream(core.list_namespaced_pod, namespace, label_selector=RUN_LABEL,
                                          timeout_seconds=5):
                        pod = event["object"]
                        name = pod.metadata.name
                        if name not in self.first_seen:
                            self.first_seen[name] = time.monotonic()
                        self.uids.setdefault(name, set()).add(pod.metadata.uid)
                        if self._stop.is_set():
                            break
                except Exception:  # noqa: BLE001 - the API server may restart; watch again
                    time.sleep(0.5)
                finally:
                    w.stop()

        self.thread = threading.Thread(target=loop, daemon=True)
        self.thread.start()

    def stop(self) -> None:
        self._stop.set()
        self.thread.join(15)

    def created_after(self, t: float) -> list[tuple[float, str]]:
        return sorted((seen, name) for name, seen in self.first_seen.items() if seen > t)


def long_benchmark(name: str, repetitions: int = 10, real: bool = False) -> dict:
    """Sequential runs of the base image, cold and warm, on one simulated CPU node (or the real node: its pods
    really start, and need no pull simulator): a minute or so of work."""
    nodes = ({"selector": {"matchLabels": {"startbench.dev/pool": "real"}}, "tolerations": [realnode.TOLERATION]}
             if real else {"selector": {"matchLabels": {"startbench.dev/pool": "cpu"}}})
    return {"apiVersion": "startbench.dev/v1alpha1", "kind": "Benchmark", "metadata": {"name": name},
            "spec": {"images": [{"name": "base", "image": BASE_IMAGE, "framework": "none"}],
                     "nodes": {**nodes, "gpusPerPod": 0, "maxNodes": 1},
                     "cache": "both", "repetitions": repetitions, "parallelism": 1, "runTimeoutSeconds": 120}}


def build_benchmark(name: str) -> dict:
    """A Benchmark whose image the operator builds (JAX slim, CPU) and runs on the real node to a first step."""
    return {"apiVersion": "startbench.dev/v1alpha1", "kind": "Benchmark", "metadata": {"name": name},
            "spec": {"images": [{"name": "jax-built", "build": {"framework": "jax", "variant": "slim",
                                                                "flavour": "cpu"}}],
                     "nodes": {"selector": {"matchLabels": {"startbench.dev/pool": "real"}},
                               "tolerations": [realnode.TOLERATION], "gpusPerPod": 0, "maxNodes": 1},
                     "cache": "cold", "repetitions": 1, "parallelism": 1, "runTimeoutSeconds": 600,
                     "workload": {"model": "resnet18", "steps": 2, "batchSize": 2, "imageSize": 64}}}
