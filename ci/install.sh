#!/usr/bin/env bash
# Install what hwsigner's demo and tests need on a Debian/Ubuntu machine:
# the missing Debian packages of ci/apt-packages.txt, then .venv with hwsigner and every extra,
# then (when npm is there) the AWS SDK for JavaScript v3 in .node/ for the JavaScript test.
set -euo pipefail
cd "$(dirname "$0")/.."
say() { echo "install: $*" >&2; }

missing=()
while read -r package; do
    case "$package" in ""|\#*) continue ;; esac
    dpkg-query -W -f='${Status}' "$package" 2>/dev/null | grep -q "ok installed" || missing+=("$package")
done < ci/apt-packages.txt
if [ "${#missing[@]}" -gt 0 ]; then
    sudo=()
    [ "$(id -u)" -eq 0 ] || sudo=(sudo)
    say "Debian packages: ${missing[*]} (apt-get: usually 20-60 s)"
    "${sudo[@]}" env DEBIAN_FRONTEND=noninteractive apt-get update -qq
    "${sudo[@]}" env DEBIAN_FRONTEND=noninteractive \
        apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
else
    say "Debian packages: all present"
fi

python="${PYTHON:-python3}"
if [ ! -x .venv/bin/python ]; then
    say "creating .venv"
    "$python" -m venv .venv
fi
say "hwsigner and its extras into .venv (pip: usually 20-40 s the first time, a few s after)"
.venv/bin/python -m pip install -q --disable-pip-version-check -e '.[all,dev]'

if command -v npm >/dev/null && [ ! -d .node/node_modules/@aws-sdk/credential-providers ]; then
    say "AWS SDK for JavaScript v3 into .node/ (npm: usually 5-20 s; skipped on failure)"
    mkdir -p .node
    npm install --prefix .node --no-audit --no-fund --silent \
        @aws-sdk/credential-providers@3 >/dev/null 2>&1 ||
        say "npm failed: the JavaScript SDK test will be skipped"
fi
say "done"
