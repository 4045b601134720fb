#!/usr/bin/env bash
# What the chart and metrics tests need (docs/operations.md):
#   prometheus (Debian's package)  tests/cluster/test_prometheus.py runs it on loopback with its own config;
#                                  the package's own service is not used (and not started where there is no systemd)
#   prometheus 3.16 (Kubernetes SD) built from the Go module proxy by hack/k8s/build.sh (cached): Debian's 2.42 has no
#                                  kubernetes_sd_configs, which tests/cluster/test_chart_e2e.py scrapes the chart's
#                                  operator pods with, as a user without the Prometheus Operator does
#   helm                           built from the Go module proxy by hack/k8s/build.sh (cached; the cluster
#                                  setup builds it too), for tests/unit/test_chart.py and tests/cluster/test_helm.py
# Idempotent: each step is skipped when its binary is already there.
set -euo pipefail
cd "$(dirname "$0")/../.."
source hack/ci/apt.sh
apt_ensure prometheus
echo "prometheus: $(/usr/bin/prometheus --version 2>&1 | head -1)"
bash hack/k8s/build.sh helm
bash hack/k8s/build.sh prometheus
