#!/usr/bin/env bash
# Build the local cluster's binaries from the Go module proxy, once, into a versioned cache:
#   $STARTBENCH_CACHE (default ~/.cache/startbench)/bin/<component>-<version>/<binary>
# Each component is skipped when its binary is already there, so a warm run costs nothing.
# Usage: hack/k8s/build.sh [component ...]   (default: all of kubernetes etcd coredns kwok helm; prometheus on request)
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
cache=${STARTBENCH_CACHE:-$HOME/.cache/startbench}
K8S_VERSION=$(sed -n 's/^require k8s.io\/kubernetes \(v[0-9.]*\)$/\1/p' "$here/go.mod")
ETCD_VERSION=$(sed -n 's/^require go.etcd.io\/etcd\/server\/v3 \(v[0-9.]*\)$/\1/p' "$here/../etcd/go.mod")
COREDNS_VERSION=$(sed -n 's/^require github.com\/coredns\/coredns \(v[0-9.]*\)$/\1/p' "$here/../coredns/go.mod")
KWOK_VERSION=${KWOK_VERSION:-v0.7.0}
HELM_VERSION=${HELM_VERSION:-v3.18.6}
# Prometheus 3.16.0: its Go module is tagged v0.316.0. Not built by default (the cluster does not need it):
# hack/ci/setup-30-prometheus.sh builds it for the tests that discover targets with kubernetes_sd_configs.
PROMETHEUS_VERSION=${PROMETHEUS_VERSION:-v0.316.0}
export GOWORK=off GOTOOLCHAIN=local CGO_ENABLED=0 GOFLAGS="-mod=mod -trimpath -buildvcs=false"

say() { printf '[build %(%H:%M:%S)T] %s\n' -1 "$*"; }
built() { [ -x "$1" ] && { say "cached: $1"; return 0; }; return 1; }

build_kubernetes() {
    local out="$cache/bin/kubernetes-$K8S_VERSION"
    mkdir -p "$out"
    local ld="-s -w -X k8s.io/component-base/version.gitVersion=$K8S_VERSION -X k8s.io/component-base/version.gitMajor=1"
    ld="$ld -X k8s.io/component-base/version.gitMinor=$(echo "$K8S_VERSION" | cut -d. -f2) -X k8s.io/component-base/version.gitTreeState=clean"
    ld="$ld -X k8s.io/client-go/pkg/version.gitVersion=$K8S_VERSION"
    for cmd in kube-apiserver kube-controller-manager kube-scheduler kubelet kubectl kube-proxy; do
        built "$out/$cmd" && continue
        say "building $cmd $K8S_VERSION (first time: several minutes)"
        local t=$SECONDS
        (cd "$here" && go build -ldflags "$ld" -o "$out/$cmd.tmp" "k8s.io/kubernetes/cmd/$cmd")
        mv "$out/$cmd.tmp" "$out/$cmd"
        say "built $cmd in $((SECONDS - t))s"
    done
}

build_etcd() {
    local out="$cache/bin/etcd-$ETCD_VERSION"
    built "$out/etcd" && return 0
    mkdir -p "$out"
    say "building etcd $ETCD_VERSION"
    local t=$SECONDS
    (cd "$here/../etcd" && go build -ldflags "-s -w" -o "$out/etcd.tmp" .)
    mv "$out/etcd.tmp" "$out/etcd"
    say "built etcd in $((SECONDS - t))s"
}

# CoreDNS with the plugins hack/coredns/main.go imports (the cluster DNS of the real node: realnode.py).
build_coredns() {
    local out="$cache/bin/coredns-$COREDNS_VERSION"
    built "$out/coredns" && return 0
    mkdir -p "$out"
    say "building coredns $COREDNS_VERSION"
    local t=$SECONDS
    (cd "$here/../coredns" && go build -ldflags "-s -w" -o "$out/coredns.tmp" .)
    mv "$out/coredns.tmp" "$out/coredns"
    say "built coredns in $((SECONDS - t))s"
}

# Prometheus with Kubernetes service discovery, which Debian's prometheus 2.42 is built without: only that
# discovery (its build tags remove_all_sd,enable_kubernetes_sd; file and static discovery are always in), no
# built-in web UI assets (the HTTP API is all the tests use).
build_prometheus() {
    local out="$cache/bin/prometheus-$PROMETHEUS_VERSION"
    built "$out/prometheus" && return 0
    mkdir -p "$out"
    local release="3.${PROMETHEUS_VERSION#v0.3}"
    release="${release%.*}.${PROMETHEUS_VERSION##*.}"
    say "building prometheus $release ($PROMETHEUS_VERSION) with Kubernetes service discovery"
    local t=$SECONDS
    GOBIN="$out" GOFLAGS="-trimpath -buildvcs=false" go install -tags remove_all_sd,enable_kubernetes_sd \
        -ldflags "-s -w -X github.com/prometheus/common/version.Version=$release" \
        "github.com/prometheus/prometheus/cmd/prometheus@$PROMETHEUS_VERSION"
    say "built prometheus in $((SECONDS - t))s"
}

go_install() { # name module version
    local out="$cache/bin/$1-$3"
    built "$out/$1" && return 0
    mkdir -p "$out"
    say "building $1 $3"
    local t=$SECONDS
    GOBIN="$out" GOFLAGS="-trimpath -buildvcs=false" go install -ldflags "-s -w" "$2@$3"
    say "built $1 in $((SECONDS - t))s"
}

components=("$@")
[ ${#components[@]} -gt 0 ] || components=(kubernetes etcd coredns kwok helm)
for c in "${components[@]}"; do
    case "$c" in
        kubernetes) build_kubernetes ;;
        etcd) build_etcd ;;
        coredns) build_coredns ;;
        kwok) go_install kwok sigs.k8s.io/kwok/cmd/kwok "$KWOK_VERSION" ;;
        helm) go_install helm helm.sh/helm/v3/cmd/helm "$HELM_VERSION" ;;
        prometheus) build_prometheus ;;
        *) echo "unknown component $c (expected kubernetes, etcd, coredns, kwok, helm or prometheus)" >&2; exit 2 ;;
    esac
done
