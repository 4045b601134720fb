"""Cluster networking for pods on the real node, as on any cluster: Services through kube-proxy, names through
cluster DNS, and the API server through the `kubernetes` Service, so in-cluster clients (the operator's own pod,
`kopf.login_with_service_account`, `load_incluster_config`) work unchanged.

`ensure(...)` (called by realnode.ensure once the kubelet is up) starts, as processes of this machine:
  forward     the API server and the no-auth registry, which listen on loopback only, also on the host's address
              on the pod bridge (realnode.NODE_IP), the one address of this machine pods reach (forward.py);
  CoreDNS     built from the Go module proxy (hack/coredns, the plugins a cluster DNS needs), on the bridge
              address port 53, serving `cluster.local` from the API (its kubernetes plugin) and forwarding every
              other name to this machine's resolver;
  kube-proxy  built from the same Kubernetes source as the rest (hack/k8s), iptables mode, for the real node,
              with the cluster's kubeconfig: ClusterIPs and NodePorts (these on the bridge address only).
and writes:
  default/kubernetes   Endpoints and EndpointSlice at the bridge address and the API server's port (the API server
                       runs with --endpoint-reconciler-type=none: its own address is loopback, which no endpoint may
                       be); its serving certificate carries that address (pki.SERVER_IPS);
  kube-system/kube-dns the Service at DNS_SERVICE_IP that the kubelet gives pods as their name server
                       (realnode.kubelet_config: clusterDNS, clusterDomain), with an EndpointSlice at CoreDNS.
Pods on simulated (KWOK) nodes run nothing, so none of this concerns them.
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from pathlib import Path

import yaml

from startbench.localcluster import components, paths
from startbench.localcluster.processes import Managed, system_path, write_if_changed

Progress = Callable[[str], None]

CLUSTER_DOMAIN = "cluster.local"
KUBERNETES_SERVICE_IP = "10.96.0.1"   # the first address of components.SERVICE_CIDR: the API server's choice
DNS_SERVICE_IP = "10.96.0.10"         # kube-system/kube-dns, as kubeadm and most clusters have it
REGISTRY_PORT = 5000                  # the no-auth local registry (registry.py)
COREDNS_HEALTH_PORT = 20253
COREDNS_READY_PORT = 20254
KUBE_PROXY_HEALTHZ_PORT = 20256
KUBE_PROXY_METRICS_PORT = 20249
FORWARD = "realnode-forward"
COREDNS = "realnode-coredns"
KUBE_PROXY = "realnode-kube-proxy"
PROCESS_NAMES = (KUBE_PROXY, COREDNS, FORWARD)  # stop order
MANAGED_BY = "startbench-localcluster"  # a label value: no "/"
FIELD_MANAGER = "startbench-localcluster"
START_TIMEOUT_S = 60.0


class ClusterNetError(RuntimeError):
    """A part of the real node's cluster networking did not start; the message says which and shows its log."""


def state_dir() -> Path:
    return paths.cluster_dir() / "realnode" / "net"


def _managed(name: str) -> Managed:
    return Managed(name, paths.cluster_dir())


# ---- configuration (pure) ------------------------------------------------------------------------------------

def forward_pairs(host_ip: str) -> list[str]:
    """What forward.py copies: the API server and the no-auth registry, from the bridge address to loopback."""
    return [f"{host_ip}:{port}=127.0.0.1:{port}" for port in (components.APISERVER_PORT, REGISTRY_PORT)]


def corefile(host_ip: str, kubeconfig: Path) -> str:
    """CoreDNS's configuration: the cluster domain (and reverse lookups of pod and Service addresses) from the API,
    every other name from this machine's resolver; health and readiness on loopback."""
    return f"""# Written by startbench (operator/startbench/localcluster/clusternet.py); rewritten on every start.
.:53 {{
    bind {host_ip}
    errors
    health 127.0.0.1:{COREDNS_HEALTH_PORT}
    ready 127.0.0.1:{COREDNS_READY_PORT}
    kubernetes {CLUSTER_DOMAIN} in-addr.arpa ip6.arpa {{
        kubeconfig {kubeconfig}
        pods insecure
        fallthrough in-addr.arpa ip6.arpa
        ttl 30
    }}
    forward . /etc/resolv.conf
    cache 30
    loop
}}
"""


def kube_proxy_config(kubeconfig: Path, node_name: str, host_ip: str, pod_subnet: str) -> str:
    """KubeProxyConfiguration (v1alpha1) for the real node: iptables mode; NodePorts on the bridge address only;
    conntrack and the OOM score left as this machine has them (root here may lack CAP_SYS_RESOURCE)."""
    config = {
        "apiVersion": "kubeproxy.config.k8s.io/v1alpha1",
        "kind": "KubeProxyConfiguration",
        "clientConnection": {"kubeconfig": str(kubeconfig), "qps": 50, "burst": 100},
        "hostnameOverride": node_name,
        "mode": "iptables",
        "clusterCIDR": pod_subnet,
        "detectLocalMode": "ClusterCIDR",
        "healthzBindAddress": f"127.0.0.1:{KUBE_PROXY_HEALTHZ_PORT}",
        "metricsBindAddress": f"127.0.0.1:{KUBE_PROXY_METRICS_PORT}",
        "nodePortAddresses": [f"{host_ip}/32"],
        "oomScoreAdj": 0,
        "iptables": {"masqueradeAll": False, "localhostNodePorts": False, "syncPeriod": "30s",
                     "minSyncPeriod": "1s"},
        "conntrack": {"maxPerCore": 0, "min": 0, "tcpEstablishedTimeout": "0s", "tcpCloseWaitTimeout": "0s"},
    }
    return json.dumps(config, indent=2) + "\n"


def _endpoints(name: str, namespace: str, host_ip: str, ports: list[dict]) -> list[dict]:
    """Endpoints (for older clients) and an EndpointSlice (what kube-proxy and CoreDNS read) at `host_ip`. The
    Endpoints are marked so the EndpointSlice mirroring controller leaves them alone: the slice is ours."""
    return [
        {"apiVersion": "v1", "kind": "Endpoints",
         "metadata": {"name": name, "namespace": namespace,
                      "labels": {"endpointslice.kubernetes.io/skip-mirror": "true"}},
         "subsets": [{"addresses": [{"ip": host_ip}], "ports": ports}]},
        {"apiVersion": "discovery.k8s.io/v1", "kind": "EndpointSlice",
         "metadata": {"name": name, "namespace": namespace,
                      "labels": {"kubernetes.io/service-name": name,
                                 "endpointslice.kubernetes.io/managed-by": MANAGED_BY}},
         "addressType": "IPv4",
         "endpoints": [{"addresses": [host_ip], "conditions": {"ready": True, "serving": True,
                                                               "terminating": False}}],
         "ports": ports},
    ]


def service_objects(host_ip: str) -> list[dict]:
    """The objects that make the API server and CoreDNS Services: the `kubernetes` Service's endpoints, and
    kube-system/kube-dns with its endpoints."""
    dns_ports = [{"name": "dns", "port": 53, "protocol": "UDP"}, {"name": "dns-tcp", "port": 53, "protocol": "TCP"}]
    dns_service = {
        "apiVersion": "v1", "kind": "Service",
        "metadata": {"name": "kube-dns", "namespace": "kube-system",
                     "labels": {"k8s-app": "kube-dns", "kubernetes.io/name": "CoreDNS",
                                "app.kubernetes.io/managed-by": MANAGED_BY}},
        # No selector: CoreDNS runs on the host, not in a pod; the EndpointSlice below points at it.
        "spec": {"clusterIP": DNS_SERVICE_IP, "type": "ClusterIP",
                 "ports": [{**p, "targetPort": 53} for p in dns_ports]},
    }
    return [*_endpoints("kubernetes", "default", host_ip,
                        [{"name": "https", "port": components.APISERVER_PORT, "protocol": "TCP"}]),
            dns_service, *_endpoints("kube-dns", "kube-system", host_ip, dns_ports)]


# ---- health ----------------------------------------------------------------------------------------------------

def _http_problem(url: str) -> str | None:
    try:
        with urllib.request.urlopen(url, timeout=2) as response:
            return None if response.status == 200 else f"{url}: HTTP {response.status}"
    except urllib.error.HTTPError as err:
        return f"{url}: HTTP {err.code}"
    except (urllib.error.URLError, OSError) as err:
        return f"nothing answers on {url}: {getattr(err, 'reason', err)}"


def _tcp_problem(host: str, port: int) -> str | None:
    try:
        with socket.create_connection((host, port), timeout=2):
            return None
    except OSError as err:
        return f"nothing answers on {host}:{port}: {err}"


def _health(host_ip: str) -> dict[str, Callable[[], str | None]]:
    return {
        FORWARD: lambda: (_tcp_problem(host_ip, components.APISERVER_PORT)
                          or _tcp_problem(host_ip, REGISTRY_PORT)),
        COREDNS: lambda: _http_problem(f"http://127.0.0.1:{COREDNS_READY_PORT}/ready"),
        KUBE_PROXY: lambda: _http_problem(f"http://127.0.0.1:{KUBE_PROXY_HEALTHZ_PORT}/healthz"),
    }


def problem(host_ip: str) -> str | None:
    """None when forward, CoreDNS and kube-proxy run and answer; else what is wrong (for cluster status)."""
    for name, check in reversed(list(_health(host_ip).items())):
        managed = _managed(name)
        if not managed.running():
            if managed.log_file.exists():
                return f"{name} is not running; last log lines:\n{managed.log_tail(10)}"
            return f"{name} not started (startbench cluster up starts it)"
        found = check()
        if found:
            return f"{name}: {found}"
    return None


# ---- starting and stopping -------------------------------------------------------------------------------------

def _start(name: str, argv: list[str], check: Callable[[], str | None], changed: bool, progress: Progress,
           env: dict[str, str] | None = None) -> None:
    managed = _managed(name)
    if changed and managed.stop():
        progress(f"real node: {name} restarted for its changed configuration")
    if managed.running() and check() is None:
        return
    t = time.monotonic()
    managed.start(argv, env={"PATH": system_path(), **(env or {})})
    deadline = time.monotonic() + START_TIMEOUT_S
    found = None
    while time.monotonic() < deadline:
        if not managed.running():
            raise ClusterNetError(f"{name} exited while starting; last lines of {managed.log_file}:\n"
                                  f"{managed.log_tail(25)}")
        found = check()
        if found is None:
            progress(f"real node: {name} up ({time.monotonic() - t:.1f}s)")
            return
        time.sleep(0.2)
    raise ClusterNetError(f"{name} did not become ready in {START_TIMEOUT_S:.0f}s ({found}); last lines of "
                          f"{managed.log_file}:\n{managed.log_tail(25)}")


def _apply(kubeconfig: Path, objects: list[dict]) -> None:
    """Server-side apply with our own field manager: idempotent, and it takes over what an older run wrote."""
    done = subprocess.run(
        [str(paths.binaries().kubectl), f"--kubeconfig={kubeconfig}", "apply", "--server-side", "--force-conflicts",
         f"--field-manager={FIELD_MANAGER}", "-f", "-"],
        input=yaml.safe_dump_all(objects), capture_output=True, text=True, timeout=60)
    if done.returncode != 0:
        raise ClusterNetError(f"writing the kubernetes and kube-dns Services' endpoints failed: {done.stderr.strip()}")


def ensure(kubeconfig: Path, node_name: str, host_ip: str, pod_subnet: str, progress: Progress = print) -> None:
    """Start (idempotently) forward, CoreDNS and kube-proxy, and write the Services' endpoints. The bridge
    (`host_ip`) and the node `node_name` must exist. Raises ClusterNetError saying what failed."""
    binaries = paths.binaries()
    missing = [str(p) for p in (binaries.kube_proxy, binaries.coredns) if not os.access(p, os.X_OK)]
    if missing:
        raise ClusterNetError(f"missing {', '.join(missing)}; run `startbench cluster up` (it builds them) or "
                              "hack/k8s/build.sh kubernetes coredns")
    state = state_dir()
    health = _health(host_ip)
    _start(FORWARD, [sys.executable, "-m", "startbench.localcluster.forward", *forward_pairs(host_ip)],
           health[FORWARD], False, progress, env={"PYTHONPATH": str(paths.REPO_ROOT / "operator")})
    _apply(kubeconfig, service_objects(host_ip))
    corefile_path = state / "Corefile"
    changed = write_if_changed(corefile_path, corefile(host_ip, kubeconfig))
    _start(COREDNS, [str(binaries.coredns), "-conf", str(corefile_path)], health[COREDNS], changed, progress)
    proxy_config = state / "kube-proxy.json"
    changed = write_if_changed(proxy_config, kube_proxy_config(kubeconfig, node_name, host_ip, pod_subnet))
    _start(KUBE_PROXY, [str(binaries.kube_proxy), f"--config={proxy_config}", "--v=1"], health[KUBE_PROXY],
           changed, progress)


def _kube_proxy_chains() -> list[str]:
    """kube-proxy's iptables chains in the nat table (empty once `kube-proxy --cleanup` ran)."""
    iptables = shutil.which("iptables-save", path=system_path())
    if iptables is None:
        return []
    saved = subprocess.run([iptables, "-t", "nat"], capture_output=True, text=True, timeout=30).stdout
    return sorted({line[1:].split()[0] for line in saved.splitlines()
                   if line.startswith(":KUBE-SERVICES") or line.startswith(":KUBE-POSTROUTING")})


def stop(progress: Progress = print) -> list[str]:
    """Stop kube-proxy (and remove its iptables rules), CoreDNS and forward. Returns what was stopped."""
    stopped = []
    for name in PROCESS_NAMES:
        if _managed(name).stop():
            stopped.append(name)
            progress(f"stopped {name}")
    kube_proxy = paths.binaries().kube_proxy
    if _kube_proxy_chains() and os.access(kube_proxy, os.X_OK):
        subprocess.run([str(kube_proxy), "--cleanup", "--v=0"], capture_output=True, timeout=120,
                       env={**os.environ, "PATH": system_path()})
    return stopped


def leftovers() -> list[str]:
    """What is left of the cluster networking: processes and kube-proxy's iptables chains. Empty after stop()."""
    found = [f"process {name} (pid {_managed(name).pid()})" for name in PROCESS_NAMES if _managed(name).running()]
    return found + [f"iptables nat chain {chain}" for chain in _kube_proxy_chains()]
