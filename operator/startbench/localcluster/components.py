"""The local cluster's components: how each is started and how its health is checked.

Everything listens on 127.0.0.1 only. Ports are fixed so a second shell finds the cluster; they sit above
the usual Kubernetes ports so a real kubelet or API server on the machine does not collide with ours.
"""

from __future__ import annotations

import dataclasses
import ssl
import sys
import urllib.error
import urllib.request
from collections.abc import Callable
from pathlib import Path

from startbench.localcluster import paths

ETCD_CLIENT_PORT = 23790
ETCD_PEER_PORT = 23800
APISERVER_PORT = 16443
CONTROLLER_MANAGER_PORT = 20257
SCHEDULER_PORT = 20259
KWOK_PORT = 20247
SERVICE_CIDR = "10.96.0.0/16"


@dataclasses.dataclass(frozen=True)
class Component:
    name: str
    argv: list[str]
    health: Callable[[], str | None]  # None when healthy, else what is wrong
    startup_seconds: float = 60.0


def _https_ok(url: str, pki: dict[str, Path] | None = None, timeout: float = 2.0) -> str | None:
    context = ssl.create_default_context()
    if pki:
        context.load_verify_locations(str(pki["ca.crt"]))
        context.load_cert_chain(str(pki["admin.crt"]), str(pki["admin.key"]))
    else:
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
    return _get_ok(url, context, timeout)


def _get_ok(url: str, context: ssl.SSLContext | None = None, timeout: float = 2.0) -> str | None:
    try:
        with urllib.request.urlopen(url, timeout=timeout, context=context) as response:
            body = response.read(200).decode(errors="replace").strip()
            return None if response.status == 200 else f"HTTP {response.status}: {body}"
    except urllib.error.HTTPError as err:
        return f"HTTP {err.code}: {err.read(300).decode(errors='replace').strip()}"
    except (urllib.error.URLError, OSError) as err:
        return f"not answering on {url}: {getattr(err, 'reason', err)}"


def control_plane(state: Path, pki: dict[str, Path], kubeconfig: Path, stages_file: Path,
                  registry_bandwidth: float) -> list[Component]:
    """The components in start order (stop in reverse)."""
    binaries = paths.binaries()
    etcd_url = f"http://127.0.0.1:{ETCD_CLIENT_PORT}"
    return [
        Component("etcd", [
            str(binaries.etcd), "--name=startbench", f"--data-dir={state / 'etcd'}",
            f"--listen-client-urls={etcd_url}", f"--advertise-client-urls={etcd_url}",
            f"--listen-peer-urls=http://127.0.0.1:{ETCD_PEER_PORT}",
            f"--initial-advertise-peer-urls=http://127.0.0.1:{ETCD_PEER_PORT}",
            f"--initial-cluster=startbench=http://127.0.0.1:{ETCD_PEER_PORT}",
            "--unsafe-no-fsync=true", "--quota-backend-bytes=4294967296", "--log-level=warn",
        ], lambda: _get_ok(f"{etcd_url}/health")),
        Component("kube-apiserver", [
            str(binaries.kube_apiserver), "--bind-address=127.0.0.1", "--advertise-address=127.0.0.1",
            f"--secure-port={APISERVER_PORT}", f"--etcd-servers={etcd_url}",
            f"--service-cluster-ip-range={SERVICE_CIDR}",
            f"--tls-cert-file={pki['apiserver.crt']}", f"--tls-private-key-file={pki['apiserver.key']}",
            f"--client-ca-file={pki['ca.crt']}",
            "--service-account-issuer=https://kubernetes.default.svc.cluster.local",
            f"--service-account-key-file={pki['sa.pub']}", f"--service-account-signing-key-file={pki['sa.key']}",
            "--authorization-mode=Node,RBAC", "--allow-privileged=true",
            # One API server on loopback: the kubernetes Service cannot point at 127.0.0.1.
            "--endpoint-reconciler-type=none",
            # Kubelet-like clients (KWOK, the pull simulator, tests) write many small objects at once.
            "--max-requests-inflight=800", "--max-mutating-requests-inflight=400",
            "--event-ttl=1h", "--profiling=false", "--v=1",
            # Logs and exec on the real node (realnode.py): reach its kubelet by IP, as a client it trusts.
            "--kubelet-preferred-address-types=InternalIP,Hostname",
            f"--kubelet-client-certificate={pki['admin.crt']}", f"--kubelet-client-key={pki['admin.key']}",
        ], lambda: _https_ok(f"https://127.0.0.1:{APISERVER_PORT}/readyz", pki), startup_seconds=90),
        Component("kube-controller-manager", [
            str(binaries.kube_controller_manager), f"--kubeconfig={kubeconfig}",
            f"--authentication-kubeconfig={kubeconfig}", f"--authorization-kubeconfig={kubeconfig}",
            "--bind-address=127.0.0.1", f"--secure-port={CONTROLLER_MANAGER_PORT}", "--leader-elect=false",
            f"--service-account-private-key-file={pki['sa.key']}", f"--root-ca-file={pki['ca.crt']}",
            f"--cluster-signing-cert-file={pki['ca.crt']}", f"--cluster-signing-key-file={pki['ca.key']}",
            "--use-service-account-credentials=true", f"--service-cluster-ip-range={SERVICE_CIDR}",
            "--kube-api-qps=200", "--kube-api-burst=400", "--v=1",
        ], lambda: _https_ok(f"https://127.0.0.1:{CONTROLLER_MANAGER_PORT}/healthz")),
        Component("kube-scheduler", [
            str(binaries.kube_scheduler), f"--kubeconfig={kubeconfig}",
            f"--authentication-kubeconfig={kubeconfig}", f"--authorization-kubeconfig={kubeconfig}",
            "--bind-address=127.0.0.1", f"--secure-port={SCHEDULER_PORT}", "--leader-elect=false",
            "--kube-api-qps=200", "--kube-api-burst=400", "--v=1",
        ], lambda: _https_ok(f"https://127.0.0.1:{SCHEDULER_PORT}/healthz")),
        Component("kwok", [
            str(binaries.kwok), f"--kubeconfig={kubeconfig}", f"--config={stages_file}",
            "--manage-nodes-with-annotation-selector=kwok.x-k8s.io/node=fake",
            f"--server-address=127.0.0.1:{KWOK_PORT}", "--node-lease-duration-seconds=40",
            "--cidr=10.244.0.0/16", "--node-ip=10.200.0.1",
        ], lambda: _get_ok(f"http://127.0.0.1:{KWOK_PORT}/healthz")),
        Component("simkubelet", [
            sys.executable, "-m", "startbench.localcluster.simkubelet", f"--kubeconfig={kubeconfig}",
            f"--registry-bandwidth={registry_bandwidth}",
        ], lambda: None),
    ]


def write_kubeconfig(path: Path, pki: dict[str, Path]) -> None:
    import base64

    def b64(p: Path) -> str:
        return base64.b64encode(p.read_bytes()).decode()

    path.write_text(f"""apiVersion: v1
kind: Config
clusters:
- name: startbench
  cluster:
    server: https://127.0.0.1:{APISERVER_PORT}
    certificate-authority-data: {b64(pki['ca.crt'])}
users:
- name: startbench-admin
  user:
    client-certificate-data: {b64(pki['admin.crt'])}
    client-key-data: {b64(pki['admin.key'])}
contexts:
- name: startbench
  context: {{cluster: startbench, user: startbench-admin}}
current-context: startbench
""")
    path.chmod(0o600)
