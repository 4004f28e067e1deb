"""A software TPM for tests and benchmarks: swtpm on loopback, keys made in it by standard tools.

    from scripts.lab.swtpm import Swtpm           # tests/swtpm.py adds the skip markers

    with Swtpm.running(tmp_path) as tpm:          # or the `swtpm` fixture of tests/tpm/conftest.py
        key_file = tpm.openssl_key(tmp_path / "k.tss2", "ec-p256")      # tpm2-openssl
        public_key = tpm.persistent_key(0x81000010, tmp_path, "ecc256")  # tpm2-tools
        assert tpm.transient_handles() == []

swtpm is started as ``swtpm socket --tpm2 --server type=tcp,port=P --ctrl type=tcp,port=P+1
--flags not-need-init,startup-clear --tpmstate dir=D`` on free ports, so it has no resource
manager: objects a program leaves loaded stay loaded, which is what the cleanliness tests check.
tpm2-tools leave theirs loaded, so ``tool`` flushes after every tpm2-tools command.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import socket
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

from cryptography.hazmat.primitives import serialization

from hwsigner.keys import PublicKey

HOST = "127.0.0.1"
OPENSSL_KEYS = {
    "ec-p256": ("EC", "group:P-256"),
    "ec-p384": ("EC", "group:P-384"),
    "ec-p521": ("EC", "group:P-521"),
    "rsa-2048": ("RSA", "bits:2048"),
}
STORAGE_PRIMARY = (
    "-G", "ecc256:aes128cfb",
    "-a", "fixedtpm|fixedparent|sensitivedataorigin|userwithauth|restricted|decrypt|noda",
)  # fmt: skip


def tpm2_pytss_importable() -> bool:
    try:
        import tpm2_pytss  # noqa: F401
    except ImportError:
        return False
    return True


def openssl_has_tpm2_provider() -> bool:
    """Whether OpenSSL has the tpm2 provider module (loading it needs a TPM, so look for it)."""
    if not shutil.which("openssl"):
        return False
    done = subprocess.run(["openssl", "version", "-m"], capture_output=True, text=True, check=False)
    directory = done.stdout.partition(":")[2].strip().strip('"')
    return bool(directory) and Path(directory, "tpm2.so").is_file()


def free_port_pair() -> int:
    """A port P such that P and P+1 are free on loopback right now."""
    for _ in range(50):
        with socket.socket() as first:
            first.bind((HOST, 0))
            port = first.getsockname()[1]
            if port >= 65535:
                continue
            with socket.socket() as second:
                try:
                    second.bind((HOST, port + 1))
                except OSError:
                    continue
        return int(port)
    raise RuntimeError("no two consecutive free ports on loopback")


def _spawn(port: int, state: Path, log: Path) -> subprocess.Popen[bytes]:
    """swtpm on ``port`` (commands) and ``port + 1`` (control), appending to ``log``."""
    with open(log, "ab") as out:
        return subprocess.Popen(
            ["swtpm", "socket", "--tpm2",
             "--server", f"type=tcp,port={port},bindaddr={HOST}",
             "--ctrl", f"type=tcp,port={port + 1},bindaddr={HOST}",
             "--flags", "not-need-init,startup-clear",
             "--tpmstate", f"dir={state}"],
            stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT,
        )  # fmt: skip


@dataclass
class Swtpm:
    """A running swtpm: ``tcti`` for hwsigner, ``env`` for tpm2-tools and tpm2-openssl."""

    port: int
    state: Path
    process: subprocess.Popen[bytes]
    log: Path
    _stopped: bool = field(default=False, repr=False)

    @property
    def tcti(self) -> str:
        return f"swtpm:host={HOST},port={self.port}"

    @property
    def env(self) -> dict[str, str]:
        return {"TPM2TOOLS_TCTI": self.tcti, "TPM2OPENSSL_TCTI": self.tcti}

    @classmethod
    def start(cls, state: Path) -> Swtpm:
        """Start swtpm with its state in ``state``, retrying on another port if one was taken."""
        state.mkdir(parents=True, exist_ok=True)
        log = state / "swtpm.log"
        for _ in range(5):
            port = free_port_pair()
            tpm = cls(port, state, _spawn(port, state, log), log)
            if tpm._wait_ready():
                return tpm
            tpm.stop()
        raise RuntimeError(f"swtpm did not start: {log.read_text(errors='replace')}")

    def kill(self) -> None:
        """Kill swtpm at once (SIGKILL), as a crash would; its state stays in ``state``."""
        if self.process.poll() is None:
            self.process.kill()
        self.process.wait()

    def restart(self) -> None:
        """Kill swtpm, then start it again on the same state and ports: a TPM that came back."""
        self.kill()
        self.process = _spawn(self.port, self.state, self.log)
        self._stopped = False
        if not self._wait_ready():
            raise RuntimeError(f"swtpm did not restart: {self.log.read_text(errors='replace')}")

    @classmethod
    @contextlib.contextmanager
    def running(cls, state: Path) -> Iterator[Swtpm]:
        tpm = cls.start(state)
        try:
            yield tpm
        finally:
            tpm.stop()

    def _wait_ready(self, timeout: float = 15) -> bool:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                return False
            with contextlib.suppress(OSError), socket.create_connection((HOST, self.port + 1), 1):
                return True
            time.sleep(0.05)
        return False

    def stop(self) -> None:
        if self._stopped:
            return
        self._stopped = True
        self.process.terminate()
        try:
            self.process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()

    def run(self, *args: str | os.PathLike[str], cwd: Path | None = None) -> str:
        """Run a command with this TPM as its TPM; its stdout, or RuntimeError with its stderr."""
        done = subprocess.run(
            list(map(str, args)),
            env={**os.environ, **self.env, "TSS2_LOG": "all+NONE"},
            cwd=cwd,
            stdin=subprocess.DEVNULL,
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )
        if done.returncode != 0:
            raise RuntimeError(f"{args[0]} failed ({done.returncode}): {done.stderr.strip()}")
        return done.stdout

    def tool(self, *args: str | os.PathLike[str], cwd: Path | None = None) -> str:
        """Run a tpm2-tools command, then flush what it left loaded (there is no RM to do it)."""
        try:
            return self.run(*args, cwd=cwd)
        finally:
            self.run("tpm2_flushcontext", "-t")
            self.run("tpm2_flushcontext", "-l")

    def transient_handles(self) -> list[int]:
        """The transient objects loaded in the TPM now (there should be none between commands)."""
        out = self.run("tpm2_getcap", "handles-transient")
        return [int(line.strip("- \n"), 16) for line in out.splitlines() if line.strip()]

    def loaded_sessions(self) -> list[int]:
        """The authorization sessions loaded in the TPM now."""
        out = self.run("tpm2_getcap", "handles-loaded-session")
        return [int(line.strip("- \n"), 16) for line in out.splitlines() if line.strip()]

    def lockout_counter(self) -> int:
        """How many authorization failures the dictionary-attack protection has counted."""
        for line in self.run("tpm2_getcap", "properties-variable").splitlines():
            if line.startswith("TPM2_PT_LOCKOUT_COUNTER:"):
                return int(line.split(":")[1], 16)
        raise RuntimeError("tpm2_getcap did not report TPM2_PT_LOCKOUT_COUNTER")

    def openssl_key(
        self, path: Path, kind: str, password: str | None = None, parent: int | None = None
    ) -> Path:
        """A ``TSS2 PRIVATE KEY`` made by ``openssl genpkey -provider tpm2`` (``OPENSSL_KEYS``)."""
        algorithm, size = OPENSSL_KEYS[kind]
        args = ["openssl", "genpkey", "-provider", "tpm2", "-provider", "base",
                "-algorithm", algorithm, "-pkeyopt", size, "-out", str(path)]  # fmt: skip
        if password is not None:
            args += ["-pkeyopt", f"user-auth:{password}"]
        if parent is not None:
            args += ["-pkeyopt", f"parent:0x{parent:08x}"]
        self.run(*args)
        return path

    def openssl_public_key(self, path: Path, password: str | None = None) -> PublicKey:
        """The public key of a TSS2 key file, as tpm2-openssl reads it."""
        pem = self.run("openssl", "pkey", "-provider", "tpm2", "-provider", "base",
                       "-in", path, "-passin", f"pass:{password or ''}", "-pubout")  # fmt: skip
        return serialization.load_pem_public_key(pem.encode())  # type: ignore[return-value]

    def storage_primary(self, workdir: Path, persistent: int | None = None) -> Path:
        """The standard ECC storage primary as a context file (and at ``persistent`` if given)."""
        context = workdir / "primary.ctx"
        self.tool("tpm2_createprimary", "-Q", "-C", "o", *STORAGE_PRIMARY, "-c", context)
        if persistent is not None:
            self.tool("tpm2_evictcontrol", "-C", "o", "-c", context, f"0x{persistent:08x}")
        return context

    def tools_key(
        self, workdir: Path, stem: str, kind: str = "ecc256", password: str | None = None
    ) -> tuple[Path, Path, Path]:
        """A key made by ``tpm2_create`` under the standard primary: ``(primary, .pub, .priv)``."""
        primary = self.storage_primary(workdir)
        pub, priv = workdir / f"{stem}.pub", workdir / f"{stem}.priv"
        auth = ["-p", password] if password is not None else []
        self.tool("tpm2_create", "-Q", "-C", primary, "-G", kind, *auth, "-u", pub, "-r", priv)
        return primary, pub, priv

    def encoded_key(
        self, workdir: Path, stem: str, kind: str = "ecc256", password: str | None = None
    ) -> Path:
        """A ``TSS2 PRIVATE KEY`` file written by ``tpm2_encodeobject`` for a tpm2-tools key."""
        primary, pub, priv = self.tools_key(workdir, stem, kind, password)
        out = workdir / f"{stem}.tss2"
        auth = ["-p"] if password is not None else []
        self.tool("tpm2_encodeobject", "-C", primary, "-u", pub, "-r", priv, *auth, "-o", out)
        return out

    def persistent_key(
        self, handle: int, workdir: Path, kind: str = "ecc256", password: str | None = None
    ) -> PublicKey:
        """A key made by tpm2-tools and made persistent at ``handle`` by ``tpm2_evictcontrol``."""
        primary, pub, priv = self.tools_key(workdir, f"persistent-{handle:08x}", kind, password)
        context = workdir / f"persistent-{handle:08x}.ctx"
        self.tool("tpm2_load", "-Q", "-C", primary, "-u", pub, "-r", priv, "-c", context)
        self.tool("tpm2_evictcontrol", "-C", "o", "-c", context, f"0x{handle:08x}")
        pem = workdir / f"persistent-{handle:08x}.pem"
        self.tool("tpm2_readpublic", "-Q", "-c", f"0x{handle:08x}", "-f", "pem", "-o", pem)
        return serialization.load_pem_public_key(pem.read_bytes())  # type: ignore[return-value]
