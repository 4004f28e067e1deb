#!/usr/bin/env bash
# ruff (lint + format check) and mypy strict on the package.
set -euo pipefail
cd "$(dirname "$0")/.."
.venv/bin/ruff check hwsigner tests scripts
.venv/bin/ruff format --check hwsigner tests scripts
.venv/bin/mypy
.venv/bin/mypy --strict scripts/*.py
