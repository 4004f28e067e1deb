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
IGNORE = shutil.ignore_patterns("__pycache__", "*.pyc")
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
        self.baseline = ""  # the revision baseline_bin installed
        self.agent_socket = directory / "agent" / "agent.sock"
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
        """The bin directory of a venv where this checkout is installed as users install it:
        ``pip install`` (not editable), with pip's or our own launcher as ``bin/hwsigner``. An
        editable install's hook makes every ``python`` start import pathlib, re and more,
        which flatters start-up ratios; users have none."""
        source = self.directory / "src-current"
        if not source.exists():
            for name in ("pyproject.toml", "README.md", "scripts/hwsigner", "hwsigner"):
                if (REPO / name).is_dir():
                    shutil.copytree(REPO / name, source / name, ignore=IGNORE)
                else:
                    (source / name).parent.mkdir(parents=True, exist_ok=True)
                    shutil.copy(REPO / name, source / name)
        return self.installed_bin("plain-venv", source)

    def baseline_bin(self, revision: str) -> Path:
        """The same for the checkout's ``revision`` (``git archive``): the release to compare."""
        source = self.directory / "src-baseline"
        self.baseline = revision
        if not source.exists():
            source.mkdir()
            archive = subprocess.run(
                ["git", "-C", str(REPO), "archive", revision],
                check=True, capture_output=True, timeout=120,
            )  # fmt: skip
            subprocess.run(["tar", "-x", "-C", str(source)], input=archive.stdout, check=True)
        return self.installed_bin("baseline-venv", source)

    def installed_bin(self, name: str, source: Path) -> Path:
        """``pip install --no-deps SOURCE`` into a new venv whose dependencies come from this
        one (a ``.pth`` line: this venv's site-packages, whose own ``.pth`` hooks do not run)."""
        venv = self.directory / name
        if not venv.exists():
            subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True, timeout=300,
                           capture_output=True)  # fmt: skip
            pip = [str(venv / "bin" / "python"), "-m", "pip", "install", "--quiet", "--no-deps"]
            subprocess.run([*pip, str(source)], check=True, timeout=600, capture_output=True)
            (packages,) = venv.glob("lib/python*/site-packages")
            paths = site.getsitepackages()  # hwsigner's dependencies, after hwsigner itself
            (packages / "zz-hwsigner-bench.pth").write_text("".join(p + "\n" for p in paths))
        return venv / "bin"

    def start_agent(self, bin_dir: Path) -> None:
        """``hwsigner agent`` for the file key on ``agent_socket``, until the lab closes."""
        command = [str(bin_dir / "hwsigner"), "agent", "--socket", str(self.agent_socket),
                   *self.flags("file")]  # fmt: skip
        agent = subprocess.Popen(command, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                                 stderr=subprocess.DEVNULL, env=self.env, text=True)  # fmt: skip
        self._cleanup.callback(stop, agent)
        assert agent.stdout is not None
        if not agent.stdout.readline().startswith("export HWSIGNER_AGENT_SOCKET="):
            raise RuntimeError("hwsigner agent did not start")

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
