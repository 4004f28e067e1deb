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
7. `hwsigner credential-process` with nothing but a `pkcs11:` URI prints credentials.
"""

from __future__ import annotations

import os
import shlex
import shutil
import subprocess
import sys
from pathlib import Path

from hwsigner.devpki import DevPki

ROOT = Path(__file__).resolve().parents[1]
DEMO = Path(sys.argv[1]).resolve() if len(sys.argv) > 1 else ROOT / "demo"
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


def make_token() -> None:
    tokens = DEMO / "softhsm" / "tokens"
    tokens.mkdir(parents=True)
    conf = DEMO / "softhsm" / "softhsm2.conf"
    conf.write_text(f"directories.tokendir = {tokens}\nobjectstore.backend = file\n")
    os.environ["SOFTHSM2_CONF"] = str(conf)
    print(f"SOFTHSM2_CONF={conf}")
    run(["softhsm2-util", "--init-token", "--free", "--label", "demo",
         "--so-pin", "87654321", "--pin", PIN], stdout=subprocess.DEVNULL)  # fmt: skip


def main() -> int:
    shutil.rmtree(DEMO, ignore_errors=True)
    step("a SoftHSM token")
    make_token()

    step("a key pair generated inside the token")
    run([*HWSIGNER, "keygen", "--private-key", URI, "--algorithm", "ec-p256"])

    step("a certificate request signed by the token")
    request = DEMO / "device.csr"
    run([*HWSIGNER, "csr", "--private-key", URI, "--subject", "CN=demo-device,O=hwsigner demo",
         "--out", str(request)])  # fmt: skip

    step("the dev PKI issues the certificate")
    pki = DevPki.create(DEMO / "pki")
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
    return 0


if __name__ == "__main__":
    try:
        sys.exit(main())
    except subprocess.CalledProcessError as exc:
        sys.exit(f"demo: a step failed (exit status {exc.returncode}); see the message above")
