#!/usr/bin/env bash
# Python dependencies of the operator and the test suite.
set -euo pipefail
cd "$(dirname "$0")/../.."
python3 -m pip install -q --disable-pip-version-check -e '.[test]'
