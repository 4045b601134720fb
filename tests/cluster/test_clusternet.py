"""In-cluster clients on the real node work as on any cluster (clusternet.py, docs/realnode.md): a pod there
resolves the cluster's names through CoreDNS behind the kube-dns Service, reaches the API server through the
`kubernetes` Service with its ServiceAccount token and the cluster CA, and reaches another Service by its name
(kube-proxy's rules), backed by a pod on the same node."""

from __future__ import annotations

import json
import textwrap
import uuid


from startbench.localcluster import clusternet, realnode
from tests.cluster import benchmarks as bm
from tests.cluster.helpers import wait_for

# Runs in the pod: what an in-cluster client does, retried for a few seconds (kube-proxy writes its rules about a
# second after a Service or its endpoints change). Its findings go out in the termination message.
CLIENT = textwrap.dedent("""
    import json, os, socket, ssl, time, urllib.error, urllib.request
    SA = "/var/run/secrets/kubernetes.io/serviceaccount"
    out = {"env_host": os.environ.get("KUBERNETES_SERVICE_HOST"), "resolv": open("/etc/resolv.conf").read()}

    def get(url, context=None, headers=None):
        try:
            with urllib.request.urlopen(urllib.request.Request(url, headers=headers or {}), timeout=5,
                                        context=context) as r:
                return r.status, r.read().decode()
        except urllib.error.HTTPError as e:
            return e.code, e.read().decode()

    deadline = time.monotonic() + 60
    while True:
        try:
            out["kubernetes_ip"] = socket.gethostbyname("kubernetes.default.svc.cluster.local")
            out["web_ip"] = socket.gethostbyname("web")                       # the search path: own namespace
            out["web_fqdn_ip"] = socket.gethostbyname("web.%s.svc.cluster.local" % os.environ["NS"])
            token = open(SA + "/token").read()
            tls = ssl.create_default_context(cafile=SA + "/ca.crt")           # verifies the serving certificate
            auth = {"Authorization": "Bearer " + token}
            out["api"] = get("https://kubernetes.default.svc/api", tls, auth)[0]
            out["secrets"] = get("https://kubernetes.default.svc/api/v1/namespaces/kube-system/secrets", tls, auth)
            out["anonymous"] = get("https://kubernetes.default.svc/api/v1/namespaces", tls)[0]
            out["web"] = get("http://web:8080/hello")
            break
        except OSError as e:
            out["last_error"] = repr(e)
            if time.monotonic() > deadline:
                break
            time.sleep(1)
    open("/dev/termination-log", "w").write(json.dumps(out))
""")


def _real_node_pod(name: str, namespace: str, command: list[str], **extra) -> dict:
    return {"apiVersion": "v1", "kind": "Pod",
            "metadata": {"name": name, "namespace": namespace, "labels": extra.pop("labels", {})},
            "spec": {"restartPolicy": "Never", "nodeSelector": {"startbench.dev/pool": "real"},
                     "tolerations": [realnode.TOLERATION], "terminationGracePeriodSeconds": 1,
                     "containers": [{"name": "main", "image": bm.BASE_IMAGE, "command": command, **extra}]}}


def test_a_pod_on_the_real_node_reaches_the_api_server_and_a_service_by_name(real_node, namespace, core, base_image):
    assert clusternet.problem(realnode.NODE_IP) is None
    nonce = uuid.uuid4().hex
    core.create_namespaced_pod(namespace, _real_node_pod(
        "web", namespace, ["sh", "-c", f"mkdir -p /tmp/w && echo {nonce} > /tmp/w/hello && cd /tmp/w && "
                                       "exec python3 -m http.server 8080"],
        labels={"app": "web"}, ports=[{"containerPort": 8080}],
        readinessProbe={"tcpSocket": {"port": 8080}, "periodSeconds": 1}))
    core.create_namespaced_service(namespace, {
        "metadata": {"name": "web"},
        "spec": {"selector": {"app": "web"}, "ports": [{"port": 8080, "targetPort": 8080}]}})
    wait_for(lambda: any(c.type == "Ready" and c.status == "True"
                         for c in (core.read_namespaced_pod("web", namespace).status.conditions or [])),
             timeout=120, what="the web pod Ready on the real node")

    core.create_namespaced_pod(namespace, _real_node_pod("client", namespace, ["python3", "-c", CLIENT],
                                                         env=[{"name": "NS", "value": namespace}]))
    pod = wait_for(lambda: (p := core.read_namespaced_pod("client", namespace)).status.phase in ("Succeeded", "Failed")
                   and p, timeout=180, what="the client pod to end")
    [state] = pod.status.container_statuses
    out = json.loads(state.state.terminated.message)
    assert "last_error" not in out or "web" in out, out

    # DNS: the kubelet gave the pod the kube-dns Service and the cluster's search path.
    assert f"nameserver {clusternet.DNS_SERVICE_IP}" in out["resolv"], out["resolv"]
    assert f"search {namespace}.svc.cluster.local svc.cluster.local cluster.local" in out["resolv"]
    assert out["kubernetes_ip"] == clusternet.KUBERNETES_SERVICE_IP == out["env_host"]
    web_ip = core.read_namespaced_service("web", namespace).spec.cluster_ip
    assert out["web_ip"] == out["web_fqdn_ip"] == web_ip

    # The API server through the kubernetes Service: TLS verified with the cluster CA, the token authenticated
    # (200 for discovery, 403 naming the ServiceAccount for what it may not read), anonymous refused.
    assert out["api"] == 200, out
    status, body = out["secrets"]
    assert status == 403 and f"system:serviceaccount:{namespace}:default" in body, out["secrets"]
    assert out["anonymous"] in (401, 403), out

    # Another Service by name: kube-proxy took the ClusterIP to the web pod on the same node.
    assert out["web"] == [200, f"{nonce}\n"], out
