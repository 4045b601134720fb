#!/usr/bin/env bash
# What tests/cluster/test_report.py needs: chromium (Debian's package), to render a real benchmark's HTML report
# headless and take a screenshot of it (docs/report.md). Idempotent: nothing is installed when it is there.
set -euo pipefail
cd "$(dirname "$0")/../.."
source hack/ci/apt.sh
apt_ensure chromium
echo "chromium: $(chromium --version 2>/dev/null | head -1)"
