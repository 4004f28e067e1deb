#!/usr/bin/env python3
"""The demo: a dev CA, a key, the local emulator, and `hwsigner credential-process`.

Everything lives in ./demo (deleted and made anew on each run) and nothing leaves this machine.
"""

from __future__ import annotations

import shlex
import subprocess
import sys
from pathlib import Path

from hwsigner.devpki import DevPki

ROOT = Path(__file__).resolve().parents[1]
DEMO = ROOT / "demo"
ACCOUNT = "111122223333"
ARNS = [
    "--trust-anchor-arn",
    f"arn:aws:rolesanywhere:us-east-1:{ACCOUNT}:trust-anchor/demo",
    "--profile-arn",
    f"arn:aws:rolesanywhere:us-east-1:{ACCOUNT}:profile/demo",
    "--role-arn",
    f"arn:aws:iam::{ACCOUNT}:role/demo",
]
HWSIGNER = [sys.executable, "-m", "hwsigner"]


def step(text: str) -> None:
    print(f"\n== {text}", flush=True)


def show(command: list[str]) -> None:
    shown = ["hwsigner", *command[3:]] if command[:3] == HWSIGNER else command
    print("$ " + shlex.join(shown), flush=True)


def main() -> int:
    subprocess.run(["rm", "-rf", str(DEMO)], check=True)
    step("a development PKI: root CA and issuing CA")
    pki = DevPki.create(DEMO / "pki")
    print(pki.root_cert, pki.issuing_cert, sep="\n")

    step("a device key and its certificate, issued by the issuing CA")
    cert, key = pki.new_leaf("ec-p256", "demo-device")
    print(cert, key, sep="\n")

    step("the local IAM Roles Anywhere emulator, trusting the dev root CA")
    emulator_cmd = [*HWSIGNER, "emulator", "--port", "0", "--trust-anchor", str(pki.root_cert)]
    show(emulator_cmd)
    emulator = subprocess.Popen(emulator_cmd, stdout=subprocess.PIPE, text=True)
    try:
        assert emulator.stdout is not None
        url = emulator.stdout.readline().strip()
        print(f"listening on {url}")

        step("credential-process, as ~/.aws/config would run it")
        command = [
            *HWSIGNER,
            "credential-process",
            "--certificate",
            str(cert),
            "--private-key",
            str(key),
            "--intermediates",
            str(pki.issuing_cert),
            *ARNS,
            "--endpoint",
            url,
        ]
        show(command)
        result = subprocess.run(command, stdout=subprocess.PIPE, text=True)
        print(result.stdout)
        return result.returncode
    finally:
        emulator.terminate()
        emulator.wait(timeout=10)


if __name__ == "__main__":
    sys.exit(main())
