#!/usr/bin/env bash
# The demo: install everything, then get credentials from a local emulator of IAM Roles Anywhere.
set -euo pipefail
cd "$(dirname "$0")/.."
bash ci/install.sh
exec .venv/bin/python scripts/demo.py "$@"
