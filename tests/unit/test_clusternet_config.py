"""The real node's cluster networking as configured (clusternet.py, pki.py, forward.py): no process started."""

from __future__ import annotations

import ipaddress
import json
from pathlib import Path

import pytest
from cryptography import x509

from startbench.localcluster import clusternet, components, forward, pki, realnode


def test_the_api_server_certificate_carries_every_address_its_clients_dial(tmp_path):
    files = pki.ensure(tmp_path)
    cert = x509.load_pem_x509_certificate(files["apiserver.crt"].read_bytes())
    sans = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    ips = {str(a) for a in sans.get_values_for_type(x509.IPAddress)}
    # the host's own clients, the kubernetes Service's ClusterIP, and its endpoint: the real node's bridge address
    assert {"127.0.0.1", clusternet.KUBERNETES_SERVICE_IP, realnode.NODE_IP} <= ips
    assert "kubernetes.default.svc" in sans.get_values_for_type(x509.DNSName)
    assert pki.missing_server_sans(files["apiserver.crt"]) == []


def test_an_older_serving_certificate_is_reissued_from_the_same_ca(tmp_path, monkeypatch):
    monkeypatch.setattr(pki, "SERVER_IPS", ("127.0.0.1", "10.96.0.1"))
    files = pki.ensure(tmp_path)
    ca_before = files["ca.crt"].read_bytes()
    monkeypatch.undo()
    assert pki.missing_server_sans(files["apiserver.crt"]) == [realnode.NODE_IP]
    files = pki.ensure(tmp_path)
    assert pki.missing_server_sans(files["apiserver.crt"]) == []
    assert files["ca.crt"].read_bytes() == ca_before
    cert = x509.load_pem_x509_certificate(files["apiserver.crt"].read_bytes())
    ca = x509.load_pem_x509_certificate(ca_before)
    cert.verify_directly_issued_by(ca)


def test_the_kubernetes_service_points_at_the_bridge_address_and_the_api_servers_port():
    objects = clusternet.service_objects(realnode.NODE_IP)
    by_kind = {(o["kind"], o["metadata"]["namespace"], o["metadata"]["name"]): o for o in objects}
    endpoints = by_kind[("Endpoints", "default", "kubernetes")]
    assert endpoints["subsets"] == [{"addresses": [{"ip": realnode.NODE_IP}],
                                     "ports": [{"name": "https", "port": components.APISERVER_PORT,
                                                "protocol": "TCP"}]}]
    # the mirroring controller must not make a second slice of it
    assert endpoints["metadata"]["labels"]["endpointslice.kubernetes.io/skip-mirror"] == "true"
    slice_ = by_kind[("EndpointSlice", "default", "kubernetes")]
    assert slice_["metadata"]["labels"]["kubernetes.io/service-name"] == "kubernetes"
    assert slice_["endpoints"][0]["addresses"] == [realnode.NODE_IP]
    assert not ipaddress.ip_address(realnode.NODE_IP).is_loopback  # the API refuses loopback endpoints


def test_kube_dns_is_a_selectorless_service_at_the_kubelets_cluster_dns_address():
    objects = clusternet.service_objects(realnode.NODE_IP)
    [service] = [o for o in objects if o["kind"] == "Service"]
    assert service["metadata"] == {**service["metadata"], "name": "kube-dns", "namespace": "kube-system"}
    assert service["spec"]["clusterIP"] == clusternet.DNS_SERVICE_IP and "selector" not in service["spec"]
    assert {(p["protocol"], p["port"]) for p in service["spec"]["ports"]} == {("UDP", 53), ("TCP", 53)}
    assert ipaddress.ip_address(clusternet.DNS_SERVICE_IP) in ipaddress.ip_network(components.SERVICE_CIDR)
    assert ipaddress.ip_address(clusternet.KUBERNETES_SERVICE_IP) == next(
        ipaddress.ip_network(components.SERVICE_CIDR).hosts())
    conf = json.loads(realnode.kubelet_config(realnode.Layout(Path("/s")), Path("/ca.crt")))
    assert conf["clusterDNS"] == [clusternet.DNS_SERVICE_IP]


def test_corefile_serves_the_cluster_domain_on_the_bridge_address_only():
    text = clusternet.corefile(realnode.NODE_IP, Path("/k/kubeconfig"))
    assert f"bind {realnode.NODE_IP}" in text
    assert "kubernetes cluster.local in-addr.arpa ip6.arpa {" in text and "kubeconfig /k/kubeconfig" in text
    assert "forward . /etc/resolv.conf" in text
    # health and readiness on loopback, away from the operator's 8080 and 8181
    assert f"health 127.0.0.1:{clusternet.COREDNS_HEALTH_PORT}" in text
    assert f"ready 127.0.0.1:{clusternet.COREDNS_READY_PORT}" in text
    # every directive used is one the build has (hack/coredns/main.go)
    main_go = (Path(__file__).resolve().parents[2] / "hack" / "coredns" / "main.go").read_text()
    for directive in ("bind", "errors", "health", "ready", "kubernetes", "forward", "cache", "loop"):
        assert f'"{directive}",' in main_go, directive


def test_kube_proxy_runs_iptables_for_the_real_node_with_node_ports_on_the_bridge_only():
    conf = json.loads(clusternet.kube_proxy_config(Path("/k/kubeconfig"), realnode.NODE_NAME, realnode.NODE_IP,
                                                   realnode.POD_SUBNET))
    assert conf["kind"] == "KubeProxyConfiguration" and conf["mode"] == "iptables"
    assert conf["hostnameOverride"] == realnode.NODE_NAME and conf["clusterCIDR"] == realnode.POD_SUBNET
    assert conf["clientConnection"]["kubeconfig"] == "/k/kubeconfig"
    assert conf["nodePortAddresses"] == [f"{realnode.NODE_IP}/32"]
    assert conf["healthzBindAddress"].startswith("127.0.0.1:") and conf["metricsBindAddress"].startswith("127.0.0.1:")
    assert conf["iptables"]["localhostNodePorts"] is False
    assert conf["conntrack"]["maxPerCore"] == 0  # leave this machine's conntrack table as it is


def test_forwarded_ports_and_their_parsing():
    pairs = [forward.parse_pair(p) for p in clusternet.forward_pairs(realnode.NODE_IP)]
    assert pairs == [((realnode.NODE_IP, components.APISERVER_PORT), ("127.0.0.1", components.APISERVER_PORT)),
                     ((realnode.NODE_IP, 5000), ("127.0.0.1", 5000))]
    for bad in ("10.0.0.1:1", "a:1=b", "a:x=b:2", ":1=b:2", "a:0=b:1"):
        with pytest.raises(ValueError):
            forward.parse_pair(bad)
