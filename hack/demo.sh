#!/usr/bin/env bash
# The demo: on a fresh machine, build and start the local cluster, run the operator, apply example Benchmarks,
# print their results and write their HTML reports (the last lines say where). Leaves the cluster running for you
# to explore (`startbench cluster down` stops it).
#   hack/demo.sh
set -euo pipefail
cd "$(dirname "$0")/.."
for setup in hack/ci/setup-00-python.sh hack/ci/setup-05-cluster.sh hack/ci/setup-10-docker.sh; do
    echo "== $setup"; bash "$setup"
done
python3 -m startbench cluster up
export KUBECONFIG
KUBECONFIG=$(python3 -m startbench cluster kubeconfig)
kubectl=$(python3 -c 'from startbench.localcluster import paths; print(paths.binaries().kubectl)')
"$kubectl" apply -f crds/benchmark.yaml
"$kubectl" wait --for=condition=Established crd/benchmarks.startbench.dev --timeout=60s
log=$(python3 -c 'from startbench.localcluster import paths; print(paths.cluster_dir() / "logs" / "demo-operator.log")')
STARTBENCH_NAMESPACES=startbench-demo STARTBENCH_METRICS_PORT=0 python3 -m startbench operator --liveness "" >"$log" 2>&1 &
operator=$!
trap 'kill $operator 2>/dev/null || true' EXIT
"$kubectl" create namespace startbench-demo --dry-run=client -o yaml | "$kubectl" apply -f -
examples=(cpu-smoke fan-out)
# A real run to the first training step, when the cluster has its real node (docs/realnode.md).
if "$kubectl" get node real-node-0 >/dev/null 2>&1; then
    echo "== building the JAX slim CPU image for the real node (a few minutes the first time)"
    ca=()
    cert=${PIP_CERT:-$(python3 -m pip config get global.cert 2>/dev/null || true)}
    [ -n "$cert" ] && [ -f "$cert" ] && ca=(--ca-bundle "$cert")
    python3 -m startbench images build --framework jax --variant slim --flavour cpu --push 127.0.0.1:5000/startbench \
        --base-image 127.0.0.1:5000/startbench/base:bookworm "${ca[@]}"
    examples+=(real-node-jax)
else
    echo "== no real node on this machine: the demo runs on simulated nodes only"
fi
for example in "${examples[@]}"; do
    "$kubectl" -n startbench-demo delete sbench "$example" --ignore-not-found --wait=true >/dev/null
    "$kubectl" -n startbench-demo apply -f "examples/$example.yaml"
done
echo "== waiting for the benchmarks (kubectl get sbench -n startbench-demo)"
for _ in $(seq 1 200); do
    "$kubectl" -n startbench-demo get sbench
    phases=$("$kubectl" -n startbench-demo get sbench -o jsonpath='{.items[*].status.phase}')
    if [[ "$phases" =~ ^((Succeeded|PartiallyFailed|Failed)( |$))+$ ]] && [ "$(wc -w <<<"$phases")" = "${#examples[@]}" ]; then
        break
    fi
    sleep 3
done
for example in "${examples[@]}"; do
    echo; echo "== startbench results $example"
    python3 -m startbench results "$example" -n startbench-demo
done
echo; echo "== startbench capacity fan-out --pods 200 --registry-bandwidth 10Gbit/s (simulated pulls: see docs/capacity.md)"
python3 -m startbench capacity fan-out -n startbench-demo --pods 200 --registry-bandwidth 10Gbit/s
reports=$(python3 -c 'from startbench.localcluster import paths; print(paths.cluster_dir() / "reports")')
mkdir -p "$reports"
echo; echo "== startbench report: one HTML file per benchmark (opens without a network)"
for example in "${examples[@]}"; do
    python3 -m startbench report "$example" -n startbench-demo -o "$reports/$example.html"
done
echo
echo "Reports written to $reports/ (open $reports/${examples[0]}.html in a browser)."
echo "The cluster keeps running: export KUBECONFIG=$KUBECONFIG; startbench cluster down stops it."
