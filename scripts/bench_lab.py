"""What the benchmark runs against: a dev PKI, the emulator, and keys in files, SoftHSM and swtpm.

    >>> with Lab.start() as lab:
    ...     lab.add_softhsm()       # lab.softhsm stays None when SoftHSM is missing
    ...     lab.flags("file")       # every credential-process flag for the file key

Everything lives in one temporary directory and on loopback; ``close`` stops the emulator and
swtpm and removes the directory. SoftHSM tokens and swtpm keys are made by the test fixtures
(``tests/softhsm.py``, ``tests/swtpm.py``) with the tools users have: pkcs11-tool and
tpm2-openssl.
"""

from __future__ import annotations

import json
import os
import shutil
import site
import subprocess
import sys
import tempfile
import urllib.request
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import Any

from lab import ARN_FLAGS, RunningEmulator, start_emulator, stop

from hwsigner.devpki import DevPki

REPO = Path(__file__).resolve().parents[1]

DEV_BIN = Path(sys.executable).parent  # this venv, with hwsigner installed in editable mode
HWSIGNER = str(DEV_BIN / "hwsigner")  # the console script users run
CONSOLE_SCRIPT = """#!{python}
import sys
from hwsigner.cli import run
if __name__ == "__main__":
    sys.exit(run())
"""
LOOPBACK_ENV = {"NO_PROXY": "127.0.0.1,localhost", "no_proxy": "127.0.0.1,localhost"}


@dataclass(frozen=True)
class TokenKey:
    """A key pair generated in a SoftHSM token, with its certificate beside it."""

    module: str
    label: str
    pin: str
    uri: str  # the certificate and key, PIN included (a benchmark token's throwaway PIN)


@dataclass(frozen=True)
class TpmKeyFile:
    """A ``TSS2 PRIVATE KEY`` made by tpm2-openssl in swtpm, and its certificate."""

    tcti: str
    key: Path
    certificate: Path


class Lab:
    """The temporary directory, the PKI, the running emulator and the keys."""

    def __init__(
        self, directory: Path, pki: DevPki, emulator: RunningEmulator, cleanup: ExitStack
    ) -> None:
        self.directory = directory
        self.pki = pki
        self.emulator = emulator
        self.file_cert, self.file_key = pki.new_leaf("ec-p256", "file-ec")
        self.softhsm: TokenKey | None = None
        self.swtpm: TpmKeyFile | None = None
        self.missing: dict[str, str] = {}
        self._cleanup = cleanup

    @classmethod
    def start(cls) -> Lab:
        """Make the directory and the PKI, start the emulator; undone if any step fails."""
        directory = Path(tempfile.mkdtemp(prefix="hwsigner-bench-"))
        cleanup = ExitStack()
        cleanup.callback(shutil.rmtree, directory, ignore_errors=True)
        try:
            pki = DevPki.create(directory / "pki")
            emulator = start_emulator(pki.root_cert)
            cleanup.callback(stop, emulator.process)
            return cls(directory, pki, emulator, cleanup)
        except BaseException:
            cleanup.close()
            raise

    def __enter__(self) -> Lab:
        return self

    def __exit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()

    def close(self) -> None:
        self._cleanup.close()

    @property
    def env(self) -> dict[str, str]:
        """The environment of the processes the benchmark starts. Python may write bytecode:
        an installed package has its ``.pyc`` files, and start-up is measured as users meet it."""
        env = {**os.environ, **LOOPBACK_ENV}
        env.pop("PYTHONDONTWRITEBYTECODE", None)
        return env

    def flags(self, kind: str) -> list[str]:
        """Every flag of a credential command against the emulator, for key ``kind``."""
        base = [*ARN_FLAGS, "--endpoint", self.emulator.url, "--intermediates"]
        base.append(str(self.pki.issuing_cert))
        if kind == "file":
            key = ["--certificate", str(self.file_cert), "--private-key", str(self.file_key)]
            return [*base, *key]
        if kind == "softhsm" and self.softhsm is not None:
            return [*base, "--certificate", self.softhsm.uri, "--pkcs11-lib", self.softhsm.module]
        if kind == "swtpm" and self.swtpm is not None:
            return [
                *base,
                "--certificate", str(self.swtpm.certificate),
                "--private-key", str(self.swtpm.key),
                "--tpm-tcti", self.swtpm.tcti,
                "--no-tpm-key-password",
            ]  # fmt: skip
        raise ValueError(f"no {kind} key in this lab")

    def plain_bin(self) -> Path:
        """The bin directory of a venv where hwsigner is installed as pip installs it: on
        ``sys.path`` with no import hook. An editable install's hook makes every ``python``
        start import pathlib, re and more, which flatters start-up ratios; users have none."""
        venv = self.directory / "plain-venv"
        if not venv.exists():
            command = [sys.executable, "-m", "venv", "--without-pip", str(venv)]
            subprocess.run(command, check=True, timeout=120, capture_output=True)
            (packages,) = venv.glob("lib/python*/site-packages")
            paths = [str(REPO), *site.getsitepackages()]  # hwsigner, then its dependencies
            (packages / "hwsigner-bench.pth").write_text("".join(p + "\n" for p in paths))
            script = venv / "bin" / "hwsigner"
            script.write_text(CONSOLE_SCRIPT.format(python=venv / "bin" / "python"))
            script.chmod(0o755)
        return venv / "bin"

    def kinds(self) -> list[str]:
        return ["file", *(k for k in ("softhsm", "swtpm") if getattr(self, k) is not None)]

    def emulator_stats(self) -> dict[str, Any]:
        with urllib.request.urlopen(f"{self.emulator.url}/_emulator/stats", timeout=10) as answer:
            return dict(json.load(answer))

    def create_sessions(self) -> int:
        return int(self.emulator_stats()["createSession"])

    def add_softhsm(self) -> None:
        """A SoftHSM token with an EC P-256 key generated in it, and its certificate."""
        from lab.softhsm import SoftHsm, available

        if not available():
            self.missing["softhsm"] = "needs softhsm2 and OpenSC's pkcs11-tool"
            return
        try:
            import pkcs11  # noqa: F401
        except ImportError:
            self.missing["softhsm"] = "needs python-pkcs11 (pip install 'hwsigner[pkcs11]')"
            return
        hsm = SoftHsm.create(self.directory / "softhsm")
        os.environ["SOFTHSM2_CONF"] = str(hsm.conf)  # for this process and its children
        token = hsm.token("bench")
        public_key = token.keygen("ec-p256", "01", "ra")
        token.write_cert(self.pki.issue(public_key, "softhsm-ec"), "01", "ra")
        uri = token.uri(object="ra", pin=True)
        self.softhsm = TokenKey(hsm.module, token.label, token.pin, uri)

    def add_swtpm(self) -> None:
        """swtpm on loopback and an EC P-256 key made in it by tpm2-openssl."""
        from lab.swtpm import Swtpm, openssl_has_tpm2_provider, tpm2_pytss_importable

        if not (shutil.which("swtpm") and tpm2_pytss_importable()):
            self.missing["swtpm"] = "needs swtpm and tpm2-pytss (pip install 'hwsigner[tpm]')"
            return
        if not openssl_has_tpm2_provider():
            self.missing["swtpm"] = "needs the tpm2-openssl provider to make a key"
            return
        tpm = Swtpm.start(self.directory / "swtpm")
        self._cleanup.callback(tpm.stop)
        key = tpm.openssl_key(self.directory / "tpm-ec.tss2", "ec-p256")
        certificate = self.pki.issue_file(tpm.openssl_public_key(key), "swtpm-ec")
        self.swtpm = TpmKeyFile(tpm.tcti, key, certificate)
