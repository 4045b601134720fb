#!/usr/bin/env bash
# The local cluster's one real node (operator/startbench/localcluster/realnode.py, docs/realnode.md):
# Debian's containerd (1.6, run as our own instance with CRI on), runc, the CNI plugins (bridge, host-local,
# loopback, firewall in /usr/lib/cni), iptables and conntrack (the bridge's masquerade rules, kube-proxy's
# Service rules), iproute2 (the bridge). The kubelet, kube-proxy and CoreDNS are built with the cluster's other
# binaries (hack/k8s/build.sh); the pause image is built from hack/realnode/pause with the Go toolchain the
# cluster build already needs. Idempotent.
set -euo pipefail
source "$(dirname "$0")/apt.sh"
apt_ensure containerd runc containernetworking-plugins iptables conntrack iproute2
for plugin in bridge host-local loopback firewall; do
    [[ -x /usr/lib/cni/$plugin ]] || { echo "missing CNI plugin /usr/lib/cni/$plugin" >&2; exit 1; }
done
echo "real node tooling: containerd $(dpkg-query -W -f='${Version}' containerd), runc $(dpkg-query -W -f='${Version}' runc), CNI plugins $(dpkg-query -W -f='${Version}' containernetworking-plugins)"
