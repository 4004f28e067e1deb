"""SoftHSM tokens for tests and benchmarks, filled by OpenSC's pkcs11-tool (never by hwsigner).

    hsm = SoftHsm.create(directory)                   # tests/softhsm.py has the pytest fixture
    token = hsm.token()                               # a fresh token with its own label
    public_key = token.keygen("ec-p256", "01", "ra")
    token.write_cert(certificate, "01", "ra")
    uri = token.uri(object="ra", pin=True)

The SoftHSM configuration and token directory live in a temporary directory for the session;
``SOFTHSM2_CONF`` points at it for this process and its children. SoftHSM reads its slot list at
C_Initialize, so ``token()`` re-initializes the module in this process when it is loaded.
"""

from __future__ import annotations

import itertools
import os
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import serialization

from hwsigner.devpki import DevPki, make_ca, new_key
from hwsigner.keys import PublicKey

MODULE_CANDIDATES = (
    "/usr/lib/softhsm/libsofthsm2.so",
    "/usr/lib/x86_64-linux-gnu/softhsm/libsofthsm2.so",
    "/usr/lib/aarch64-linux-gnu/softhsm/libsofthsm2.so",
    "/usr/local/lib/softhsm/libsofthsm2.so",
)
MODULE = next((path for path in MODULE_CANDIDATES if os.path.isfile(path)), "")
PIN = "pin-7Rq"  # not digits: a PIN must never be found by chance in hex output
SO_PIN = "12345678"
KEY_TYPES = {"ec-p256": "EC:prime256v1", "ec-p384": "EC:secp384r1", "rsa-2048": "rsa:2048"}


def available() -> bool:
    """Whether SoftHSM2 and OpenSC's pkcs11-tool are installed."""
    return bool(MODULE and shutil.which("softhsm2-util") and shutil.which("pkcs11-tool"))


_labels = itertools.count(1)


@dataclass(frozen=True)
class SoftHsm:
    """A SoftHSM configuration in ``directory``; ``token()`` makes a new token in it."""

    directory: Path
    module: str = MODULE

    @property
    def conf(self) -> Path:
        return self.directory / "softhsm2.conf"

    @classmethod
    def create(cls, directory: Path) -> SoftHsm:
        (directory / "tokens").mkdir(parents=True)
        hsm = cls(directory)
        hsm.conf.write_text(
            f"directories.tokendir = {directory / 'tokens'}\n"
            "objectstore.backend = file\nlog.level = ERROR\nslots.removable = false\n"
        )
        return hsm

    def run(self, *args: str) -> subprocess.CompletedProcess[bytes]:
        env = {**os.environ, "SOFTHSM2_CONF": str(self.conf)}
        done = subprocess.run(args, env=env, capture_output=True, check=False, timeout=120)
        if done.returncode != 0:
            raise RuntimeError(f"{args[0]} failed: {done.stderr.decode(errors='replace')}")
        return done

    def token(self, label: str | None = None, pin: str = PIN) -> SoftToken:
        """A freshly initialized token (label ``hwsigner-test-N`` unless given)."""
        label = label or f"hwsigner-test-{next(_labels)}"
        self.run(
            "softhsm2-util",
            "--init-token",
            "--free",
            "--label",
            label,
            "--so-pin",
            SO_PIN,
            "--pin",
            pin,
        )
        reinitialize_in_process(self.module)
        return SoftToken(self, label, pin)


@dataclass(frozen=True)
class SoftToken:
    hsm: SoftHsm
    label: str
    pin: str

    def tool(self, *args: str, login: bool = True) -> bytes:
        base = ["pkcs11-tool", "--module", self.hsm.module, "--token-label", self.label]
        if login:
            base += ["--login", "--pin", self.pin]
        return self.hsm.run(*base, *args).stdout

    def keygen(self, kind: str, id_hex: str, label: str, *, always_auth: bool = False) -> PublicKey:
        """A key pair generated inside the token; returns its public key."""
        extra = ["--always-auth"] if always_auth else []
        self.tool(
            "--keypairgen",
            "--key-type",
            KEY_TYPES[kind],
            "--id",
            id_hex,
            "--label",
            label,
            "--usage-sign",
            *extra,
        )
        der = self.tool("--read-object", "--type", "pubkey", "--id", id_hex, login=False)
        public_key = serialization.load_der_public_key(der)
        return public_key  # type: ignore[return-value]

    def write_cert(
        self, certificate: x509.Certificate, id_hex: str, label: str, *, private: bool = False
    ) -> None:
        path = self.hsm.directory / f"{self.label}-{label}.der"
        path.write_bytes(certificate.public_bytes(serialization.Encoding.DER))
        extra = ["--private"] if private else []
        self.tool(
            "--write-object", str(path), "--type", "cert", "--id", id_hex, "--label", label, *extra
        )

    def uri(self, *, pin: bool = False, **attributes: str) -> str:
        """``pkcs11:token=LABEL;name=value...`` (attribute names with _ for -)."""
        parts = [f"token={self.label}"]
        parts += [f"{name.replace('_', '-')}={value}" for name, value in attributes.items()]
        return "pkcs11:" + ";".join(parts) + (f"?pin-value={self.pin}" if pin else "")


def reinitialize_in_process(module: str) -> None:
    """Make an already loaded SoftHSM in this process see tokens created since."""
    try:
        import pkcs11
    except ModuleNotFoundError:
        return
    pkcs11.lib(module).reinitialize()


@dataclass(frozen=True)
class Lab:
    """A token holding an EC and an RSA key with their certificates, the issuing CA, an
    unrelated CA certificate and, when asked, the root CA."""

    token: SoftToken
    pki: DevPki
    ec_cert: x509.Certificate
    rsa_cert: x509.Certificate


def make_lab(softhsm: SoftHsm, pki: DevPki, name: str, *, with_root: bool = False) -> Lab:
    token = softhsm.token()
    ec_cert = pki.issue(token.keygen("ec-p256", "01", "ec"), f"{name}-ec")
    token.write_cert(ec_cert, "01", "ec")
    rsa_cert = pki.issue(token.keygen("rsa-2048", "02", "rsa"), f"{name}-rsa")
    token.write_cert(rsa_cert, "02", "rsa")
    token.write_cert(pki.issuing[0], "10", "issuing-ca")
    if with_root:
        token.write_cert(pki.root[0], "11", "root-ca")
    stranger = make_ca("unrelated CA", new_key("ec-p256"))  # type: ignore[arg-type]
    token.write_cert(stranger, "12", "unrelated")
    return Lab(token, pki, ec_cert, rsa_cert)
