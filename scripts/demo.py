#!/usr/bin/env python3
"""The demo: a SoftHSM token, a key born in it, a dev CA, the local emulator, credentials.

Everything lives in ./demo, or the directory given as the argument (made anew on each run), and
nothing leaves this machine:

1. a SoftHSM token `demo` (SOFTHSM2_CONF points at ./demo/softhsm);
2. `hwsigner keygen`: an EC P-256 key pair generated inside the token, never extractable;
3. `hwsigner csr`: a certificate request signed by the token;
4. the dev PKI (root CA, issuing CA) issues the certificate;
5. `hwsigner import-cert`: the certificate and the issuing CA go onto the token beside the key;
6. `hwsigner emulator`: IAM Roles Anywhere's CreateSession, offline, trusting the dev root CA;
7. `hwsigner credential-process` with nothing but a `pkcs11:` URI prints credentials;
8. what next: the exact lines that put `hwsigner` on PATH, restart the emulator on --port
   (default 8080), and a ~/.aws/config profile for the demo token, with a command that uses it.
"""

from __future__ import annotations

import argparse
import os
import shlex
import shutil
import subprocess
import sys
from pathlib import Path

from hwsigner.devpki import DevPki

ROOT = Path(__file__).resolve().parents[1]
PROFILE = "hwsigner-demo"
PIN = "1234"  # a throwaway token's PIN: fine to show in a demo, never in real use
URI = f"pkcs11:token=demo;object=roles-anywhere?pin-value={PIN}"
ACCOUNT = "111122223333"
ARNS = [
    "--trust-anchor-arn", f"arn:aws:rolesanywhere:us-east-1:{ACCOUNT}:trust-anchor/demo",
    "--profile-arn", f"arn:aws:rolesanywhere:us-east-1:{ACCOUNT}:profile/demo",
    "--role-arn", f"arn:aws:iam::{ACCOUNT}:role/demo",
]  # fmt: skip
HWSIGNER = [sys.executable, "-m", "hwsigner"]


def step(text: str) -> None:
    print(f"\n== {text}", flush=True)


def run(command: list[str], **kwargs: object) -> subprocess.CompletedProcess[str]:
    shown = ["hwsigner", *command[3:]] if command[:3] == HWSIGNER else command
    print("$ " + shlex.join(shown), flush=True)
    return subprocess.run(command, check=True, text=True, **kwargs)  # type: ignore[call-overload, no-any-return]


def make_token(demo: Path) -> None:
    tokens = demo / "softhsm" / "tokens"
    tokens.mkdir(parents=True)
    conf = demo / "softhsm" / "softhsm2.conf"
    conf.write_text(f"directories.tokendir = {tokens}\nobjectstore.backend = file\n")
    os.environ["SOFTHSM2_CONF"] = str(conf)
    print(f"SOFTHSM2_CONF={conf}")
    run(["softhsm2-util", "--init-token", "--free", "--label", "demo",
         "--so-pin", "87654321", "--pin", PIN], stdout=subprocess.DEVNULL)  # fmt: skip


def next_steps(demo: Path, port: int) -> str:
    """What to do after the demo, with this machine's paths: each line works as printed."""
    bin_dir = Path(sys.executable).parent
    conf = demo / "softhsm" / "softhsm2.conf"
    anchor = demo / "pki" / "root-ca.pem"
    process = shlex.join([
        "env", f"SOFTHSM2_CONF={conf}", str(bin_dir / "hwsigner"), "credential-process",
        "--certificate", URI, "--endpoint", f"http://127.0.0.1:{port}", *ARNS,
    ]).replace(f"'{URI}'", f'"{URI}"')  # fmt: skip
    use = (
        f'import boto3; print(boto3.Session(profile_name="{PROFILE}").get_credentials().access_key)'
    )
    return "\n".join([
        "1. hwsigner is in .venv; to run it by name in this shell:",
        f'     export PATH="{bin_dir}:$PATH"',
        "   or install it for good: scripts/install.sh --user (~/.local/bin), or as root",
        "   scripts/install.sh (/usr/local/bin, what the systemd units in docs/delivery.md use)",
        "2. the emulator stopped with the demo; start it again, in another terminal:",
        f"     {bin_dir / 'hwsigner'} emulator --port {port} --trust-anchor {anchor}",
        "3. add this profile to ~/.aws/config (one line for credential_process):",
        f"     [profile {PROFILE}]",
        f"     credential_process = {process}",
        "4. any AWS SDK now gets credentials from the token, e.g. boto3:",
        f"     {bin_dir / 'python'} -c {shlex.quote(use)}",
        "More: README.md, docs/delivery.md (serve, update, export-credentials), docs/pkcs11.md.",
    ])  # fmt: skip


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("directory", nargs="?", type=Path, default=ROOT / "demo")
    parser.add_argument("--port", type=int, default=8080, help="the emulator's port in what next")
    args = parser.parse_args()
    demo = args.directory.resolve()
    shutil.rmtree(demo, ignore_errors=True)
    step("a SoftHSM token")
    make_token(demo)

    step("a key pair generated inside the token")
    run([*HWSIGNER, "keygen", "--private-key", URI, "--algorithm", "ec-p256"])

    step("a certificate request signed by the token")
    request = demo / "device.csr"
    run([*HWSIGNER, "csr", "--private-key", URI, "--subject", "CN=demo-device,O=hwsigner demo",
         "--out", str(request)])  # fmt: skip

    step("the dev PKI issues the certificate")
    pki = DevPki.create(demo / "pki")
    run([sys.executable, str(ROOT / "scripts" / "devpki.py"), "issue", str(pki.directory),
         str(request), "demo-device"])  # fmt: skip

    step("the certificate and its issuing CA go onto the token, beside the key")
    run([*HWSIGNER, "import-cert", "--private-key", URI,
         "--certificate", str(pki.directory / "demo-device.pem"),
         "--chain", str(pki.issuing_cert)])  # fmt: skip

    step("the local IAM Roles Anywhere emulator, trusting the dev root CA")
    command = [*HWSIGNER, "emulator", "--port", "0", "--trust-anchor", str(pki.root_cert)]
    print("$ " + shlex.join(["hwsigner", *command[3:]]))
    emulator = subprocess.Popen(command, stdout=subprocess.PIPE, text=True)
    try:
        assert emulator.stdout is not None
        url = emulator.stdout.readline().strip()
        print(f"listening on {url}")

        step("credential-process, as ~/.aws/config runs it: the key never leaves the token")
        result = run([*HWSIGNER, "credential-process", "--certificate", URI, *ARNS,
                      "--endpoint", url], stdout=subprocess.PIPE)  # fmt: skip
        print(result.stdout)
    finally:
        emulator.terminate()
        emulator.wait(timeout=10)
    step("what next")
    print(next_steps(demo, args.port), flush=True)
    return 0


if __name__ == "__main__":
    try:
        sys.exit(main())
    except subprocess.CalledProcessError as exc:
        sys.exit(f"demo: a step failed (exit status {exc.returncode}); see the message above")
