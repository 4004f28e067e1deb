#!/usr/bin/env bash
# Install what hwsigner's demo and tests need on a Debian/Ubuntu machine:
# the missing Debian packages of ci/apt-packages.txt, then .venv with hwsigner and every extra.
set -euo pipefail
cd "$(dirname "$0")/.."

missing=()
while read -r package; do
    case "$package" in ""|\#*) continue ;; esac
    dpkg-query -W -f='${Status}' "$package" 2>/dev/null | grep -q "ok installed" || missing+=("$package")
done < ci/apt-packages.txt
if [ "${#missing[@]}" -gt 0 ]; then
    sudo=""
    [ "$(id -u)" -eq 0 ] || sudo="sudo"
    echo "installing Debian packages: ${missing[*]}" >&2
    $sudo apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

python="${PYTHON:-python3}"
[ -x .venv/bin/python ] || "$python" -m venv .venv
.venv/bin/python -m pip install -q --disable-pip-version-check -e '.[all,dev]'
