#!/usr/bin/env bash
# The test command (README): set up what the suite needs, then run every tier.
#   hack/test.sh            set up (idempotent, cached) and run all tiers
#   hack/test.sh -m "not cluster and not docker"   extra pytest arguments pass through
# The pure unit tier needs none of this setup (no setup scripts, seconds):
#   python3 -m pip install -e '.[test]' && python3 -m pytest -m unit
# Tests marked `tools` or `framework` skip when what they need is missing, naming the setup script; with CI=true
# they fail instead (tests/conftest.py).
set -euo pipefail
cd "$(dirname "$0")/.."
t0=$(date +%s)
for setup in hack/ci/setup-*.sh; do
    echo "== $setup"
    s=$(date +%s)
    bash "$setup"
    echo "== $setup took $(( $(date +%s) - s ))s"
done
echo "== setup took $(( $(date +%s) - t0 ))s in all"
set +e
python3 -m pytest -p no:cacheprovider "$@"
rc=$?
set -e
echo "== tests took $(( $(date +%s) - t0 ))s since start"
# pytest exits 5 when it collected nothing: that is a failure here, not a pass.
exit $rc
