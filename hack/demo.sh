#!/usr/bin/env bash
# The demo, as a user runs startbench: on a fresh machine, install what the local cluster and its real node need,
# build and start the cluster, build the operator image, `helm install` the chart (two operator replicas on the
# real node, from that image, one leading), apply example Benchmarks with kubectl, print their results (the last
# one a real JAX run on the real node) and write their HTML reports (the last lines say where). Leaves the cluster
# and the release running for you to explore (`helm uninstall startbench -n startbench`; `startbench cluster down`).
#   hack/demo.sh
set -euo pipefail
cd "$(dirname "$0")/.."
for setup in hack/ci/setup-00-python.sh hack/ci/setup-05-cluster.sh hack/ci/setup-10-docker.sh \
             hack/ci/setup-15-realnode.sh; do
    echo "== $setup"; bash "$setup"
done
python3 -m startbench cluster up
export KUBECONFIG
KUBECONFIG=$(python3 -m startbench cluster kubeconfig)
kubectl=$(python3 -c 'from startbench.localcluster import paths; print(paths.binaries().kubectl)')
helm=$(python3 -c 'from startbench.localcluster import paths; print(paths.binaries().helm)')
if ! "$kubectl" get node real-node-0 >/dev/null 2>&1; then
    echo "The demo runs the operator from its image on the cluster's real node, which this machine cannot run:" >&2
    python3 -c 'from startbench.localcluster import realnode; print(realnode.unavailable_reason() or realnode.status_problem())' >&2
    exit 1
fi
# A machine whose outbound TLS goes through an intercepting proxy: the image builds' pip step needs its CA bundle.
ca=()
cert=${PIP_CERT:-$(python3 -m pip config get global.cert 2>/dev/null || true)}
[ -n "$cert" ] && [ -f "$cert" ] && ca=(--ca-bundle "$cert")

echo "== building the operator image (docs/images.md)"
digest=$(python3 -m startbench images build --framework operator --variant slim --push 127.0.0.1:5000 \
    --base-image 127.0.0.1:5000/startbench/base:bookworm "${ca[@]}" --format json \
    | python3 -c 'import json, sys; print(json.load(sys.stdin)["digest"])')
echo "operator image: 127.0.0.1:5000/startbench-operator@$digest"
echo "== building the JAX slim CPU image for the real node (a few minutes the first time)"
python3 -m startbench images build --framework jax --variant slim --flavour cpu --push 127.0.0.1:5000/startbench \
    --base-image 127.0.0.1:5000/startbench/base:bookworm "${ca[@]}"

echo "== helm install (docs/operations.md: the operator on the real node, watching startbench-demo)"
"$kubectl" create namespace startbench-demo --dry-run=client -o yaml | "$kubectl" apply -f -
# fan-out purges the simulated nodes' caches before its cold runs: cachePurge.simulatedNodes grants `patch nodes`.
"$helm" upgrade --install startbench charts/startbench --namespace startbench --create-namespace \
    --set image.digest="$digest" --set operator.watchNamespaces='{startbench-demo}' \
    --set-json 'operator.nodeSelector={"startbench.dev/pool":"real"}' \
    --set-json 'operator.tolerations=[{"key":"startbench.dev/real-node","operator":"Equal","value":"true","effect":"NoSchedule"}]' \
    --set cachePurge.simulatedNodes=true --wait --timeout 5m
"$kubectl" -n startbench get pods -o wide
leader=""
for _ in $(seq 1 60); do
    leader=$("$kubectl" -n startbench get lease startbench -o jsonpath='{.spec.holderIdentity}' 2>/dev/null || true)
    [ -n "$leader" ] && break
    sleep 1
done
leader=${leader%_*}
echo "leading: pod $leader (the Lease startbench/startbench); the other replica stands by"

examples=(cpu-smoke fan-out real-node-jax)
for example in "${examples[@]}"; do
    "$kubectl" -n startbench-demo delete sbench "$example" --ignore-not-found --wait=true >/dev/null
    "$kubectl" -n startbench-demo apply -f "examples/$example.yaml"
done
echo "== waiting for the benchmarks (kubectl get sbench -n startbench-demo)"
for _ in $(seq 1 300); do
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
now=$("$kubectl" -n startbench get lease startbench -o jsonpath='{.spec.holderIdentity}')
echo
echo "The operator pod that ran these benchmarks: ${now%_*} (namespace startbench, image"
echo "127.0.0.1:5000/startbench-operator@$digest): kubectl -n startbench logs ${now%_*} -c operator"
echo "real-node-jax ran on real-node-0 to its first training step: startbench results real-node-jax -n startbench-demo"
echo "Reports written to $reports/ (open $reports/${examples[-1]}.html in a browser)."
echo "The cluster keeps running: export KUBECONFIG=$KUBECONFIG; helm uninstall startbench -n startbench;"
echo "startbench cluster down stops it."
