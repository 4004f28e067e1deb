#!/usr/bin/env bash
# Install the `hwsigner` command from this checkout, in a virtual environment of its own:
#   as root:              /usr/local/lib/hwsigner (the environment) and /usr/local/bin/hwsigner
#   as a user, or --user: ~/.local/lib/hwsigner and ~/.local/bin/hwsigner
#   --prefix DIR:         DIR/lib/hwsigner and DIR/bin/hwsigner
#   --extras LIST:        the extras to install (default: all; e.g. --extras pkcs11)
# The systemd units in docs/delivery.md run /usr/local/bin/hwsigner: the root install.
# The tpm extra builds tpm2-pytss: it needs libtss2-dev and pkg-config (ci/apt-packages.txt).
set -euo pipefail
cd "$(dirname "$0")/.."

prefix=/usr/local
[ "$(id -u)" -eq 0 ] || prefix="$HOME/.local"
extras=all
while [ $# -gt 0 ]; do
    case "$1" in
        --user) prefix="$HOME/.local" ;;
        --prefix) prefix="${2:?--prefix needs a directory}"; shift ;;
        --extras) extras="${2:?--extras needs a list, e.g. pkcs11,tpm}"; shift ;;
        *) echo "install.sh: unknown argument $1 (use --user, --prefix DIR, --extras LIST)" >&2; exit 1 ;;
    esac
    shift
done

venv="$prefix/lib/hwsigner"
echo "installing hwsigner[$extras] into $venv (about a minute: pip builds the extras)" >&2
mkdir -p "$prefix/bin"
"${PYTHON:-python3}" -m venv "$venv"
"$venv/bin/python" -m pip install -q --disable-pip-version-check "$PWD[$extras]"
ln -sfn "$venv/bin/hwsigner" "$prefix/bin/hwsigner"
echo "installed: $prefix/bin/hwsigner ($("$prefix/bin/hwsigner" version))" >&2
case ":$PATH:" in
    *":$prefix/bin:"*) ;;
    *) echo "add it to PATH: export PATH=\"$prefix/bin:\$PATH\" (e.g. in ~/.profile)" >&2 ;;
esac
