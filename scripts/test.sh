#!/usr/bin/env bash
# The test command: install everything the suite needs, then run it (extra args go to pytest).
set -euo pipefail
cd "$(dirname "$0")/.."
bash ci/install.sh
.venv/bin/python -m pytest "$@"
