#!/usr/bin/env bash
# The local cluster's binaries (kube-apiserver, controller-manager, scheduler, kubelet, kubectl, kube-proxy, etcd,
# CoreDNS, kwok, helm), built from the Go module proxy by hack/k8s/build.sh into ~/.cache/startbench/bin/<component>-<version>/.
# First build on 2 cores: about 8 minutes; afterwards every component is found cached and this takes a second.
set -euo pipefail
cd "$(dirname "$0")/../.."
if ! command -v go >/dev/null 2>&1 && [ -x /usr/local/go/bin/go ]; then
    export PATH="/usr/local/go/bin:$PATH"
fi
if ! command -v go >/dev/null 2>&1; then
    echo "Go is needed to build the local cluster (Kubernetes v1.33 needs Go >= 1.24); install it and retry" >&2
    exit 1
fi
echo "go: $(go version)"
t=$SECONDS
bash hack/k8s/build.sh
echo "cluster binaries ready in $((SECONDS - t))s"
