"""A development PKI: a root CA, an issuing CA, and leaf certificates Roles Anywhere accepts.

    >>> import tempfile
    >>> from hwsigner.devpki import DevPki, new_key
    >>> pki = DevPki.create(tempfile.mkdtemp())   # root-ca.pem, issuing-ca.pem and their keys
    >>> pki.issue_file(new_key("ec-p256").public_key(), "device-0001").name
    'device-0001.pem'
    >>> old = pki.issue(new_key("ec-p256").public_key(), "device-0002")
    >>> pki.revoke([old]).get_revoked_certificate_by_serial_number(old.serial_number) is not None
    True

For demos, tests and trying things out; not for production (the CA keys sit in plain files).
Leaves are X.509 v3, not CAs, with keyUsage digitalSignature and extendedKeyUsage clientAuth,
signed with SHA-256: what IAM Roles Anywhere requires.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from .errors import ConfigError
from .keys.backend import PublicKey
from .keys.file import MLDSA_PRIVATE_KEYS, MLDSAPrivateKey, certificate_hash
from .keys.file import PrivateKey as LeafKey
from .provision.csr import load_csr

CaKey = ec.EllipticCurvePrivateKey | MLDSAPrivateKey  # ML-DSA signs without a hash (RFC 9881)
KEY_TYPES = ("rsa-2048", "rsa-3072", "ec-p256", "ec-p384", "ec-p521", "ml-dsa-44", "ml-dsa-65")


def new_key(kind: str) -> LeafKey:
    """A software key of one of ``KEY_TYPES``."""
    if kind.startswith("ml-dsa-"):
        return MLDSA_PRIVATE_KEYS[("44", "65", "87").index(kind[7:])].generate()
    if kind.startswith("rsa-"):
        return rsa.generate_private_key(public_exponent=65537, key_size=int(kind[4:]))
    curves = {"ec-p256": ec.SECP256R1(), "ec-p384": ec.SECP384R1(), "ec-p521": ec.SECP521R1()}
    return ec.generate_private_key(curves[kind])


def name(common_name: str) -> x509.Name:
    return x509.Name(
        [
            x509.NameAttribute(NameOID.ORGANIZATION_NAME, "hwsigner dev"),
            x509.NameAttribute(NameOID.COMMON_NAME, common_name),
        ]
    )


def make_ca(
    common_name: str,
    key: CaKey,
    issuer: tuple[x509.Certificate, CaKey] | None = None,
    *,
    now: datetime | None = None,
    days: int = 3650,
    path_length: int | None = None,
) -> x509.Certificate:
    """A CA certificate: self-signed when ``issuer`` is None; ``path_length``: at most that many
    CAs under it (RFC 5280 pathLenConstraint)."""
    now = now or datetime.now(timezone.utc)
    issuer_name, signer = (issuer[0].subject, issuer[1]) if issuer else (name(common_name), key)
    builder = (
        x509.CertificateBuilder()
        .subject_name(name(common_name))
        .issuer_name(issuer_name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - timedelta(minutes=5))
        .not_valid_after(now + timedelta(days=days))
        .add_extension(x509.BasicConstraints(ca=True, path_length=path_length), critical=True)
        .add_extension(
            x509.KeyUsage(False, False, False, False, False, True, True, False, False),
            critical=True,
        )
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), False)
    )
    if issuer:
        builder = builder.add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(issuer[1].public_key()), False
        )
    return builder.sign(signer, certificate_hash(signer))


def make_leaf(
    public_key: PublicKey,
    common_name: str,
    issuer: tuple[x509.Certificate, CaKey],
    *,
    now: datetime | None = None,
    days: int = 365,
    serial: int | None = None,
    subject: x509.Name | None = None,
) -> x509.Certificate:
    """A leaf certificate for ``public_key`` with the extensions Roles Anywhere requires;
    ``subject`` replaces ``O=hwsigner dev, CN=<common_name>``."""
    now = now or datetime.now(timezone.utc)
    ca_cert, ca_key = issuer
    return (
        x509.CertificateBuilder()
        .subject_name(subject or name(common_name))
        .issuer_name(ca_cert.subject)
        .public_key(public_key)
        .serial_number(serial or x509.random_serial_number())
        .not_valid_before(now - timedelta(minutes=5))
        .not_valid_after(now + timedelta(days=days))
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(
            x509.KeyUsage(True, False, False, False, False, False, False, False, False),
            critical=True,
        )
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.CLIENT_AUTH]), False)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(public_key), False)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()), False
        )
        .sign(ca_key, certificate_hash(ca_key))
    )


def make_crl(
    serials: Sequence[int],
    issuer: tuple[x509.Certificate, CaKey],
    *,
    now: datetime | None = None,
    days: int = 30,
) -> x509.CertificateRevocationList:
    """A CRL signed by ``issuer`` that revokes ``serials`` (RFC 5280 section 5)."""
    now = now or datetime.now(timezone.utc)
    ca_cert, ca_key = issuer
    builder = (
        x509.CertificateRevocationListBuilder()
        .issuer_name(ca_cert.subject)
        .last_update(now - timedelta(minutes=5))
        .next_update(now + timedelta(days=days))
        .add_extension(x509.CRLNumber(int(now.timestamp())), False)
    )
    for serial in serials:
        builder = builder.add_revoked_certificate(
            x509.RevokedCertificateBuilder()
            .serial_number(serial)
            .revocation_date(now - timedelta(minutes=1))
            .build()
        )
    return builder.sign(ca_key, certificate_hash(ca_key))


def pem(cert: x509.Certificate) -> bytes:
    return cert.public_bytes(serialization.Encoding.PEM)


def key_pem(key: LeafKey | CaKey) -> bytes:
    return key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )


def load_public_key(path: Path) -> PublicKey:
    """The public key of a PEM public key, or of a PEM/DER certificate request (checked)."""
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise ConfigError(f"cannot read {path}: {exc.strerror}") from None
    if b"PUBLIC KEY-----" in data:
        try:
            key = serialization.load_pem_public_key(data)
        except ValueError:
            raise ConfigError(f"{path} holds no readable public key") from None
    else:
        key = load_csr(data, str(path)).public_key()
    if not isinstance(key, PublicKey):
        raise ConfigError(f"{path}: only RSA, EC and ML-DSA keys can be certified here")
    return key


def write_private(path: Path, data: bytes) -> None:
    """Write a file only its owner can read, created with mode 0600 from the start."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as f:
        f.write(data)


@dataclass(frozen=True, slots=True)
class DevPki:
    """A root CA and an issuing CA under it, kept in ``directory``.

    Files: ``root-ca.pem``, ``root-ca.key``, ``issuing-ca.pem``, ``issuing-ca.key``.
    """

    directory: Path
    root: tuple[x509.Certificate, CaKey]
    issuing: tuple[x509.Certificate, CaKey]

    @property
    def root_cert(self) -> Path:
        return self.directory / "root-ca.pem"

    @property
    def issuing_cert(self) -> Path:
        return self.directory / "issuing-ca.pem"

    @classmethod
    def create(cls, directory: str | os.PathLike[str]) -> DevPki:
        """Make both CAs (EC P-256 keys) and write them to ``directory``."""
        path = Path(directory)
        path.mkdir(parents=True, exist_ok=True)
        root_key = ec.generate_private_key(ec.SECP256R1())
        root = (make_ca("hwsigner dev root CA", root_key), root_key)
        issuing_key = ec.generate_private_key(ec.SECP256R1())
        issuing = (make_ca("hwsigner dev issuing CA", issuing_key, root), issuing_key)
        for stem, (cert, key) in (("root-ca", root), ("issuing-ca", issuing)):
            (path / f"{stem}.pem").write_bytes(pem(cert))
            write_private(path / f"{stem}.key", key_pem(key))
        return cls(path, root, issuing)

    @classmethod
    def load(cls, directory: str | os.PathLike[str]) -> DevPki:
        """Read a PKI that ``create`` wrote."""
        path = Path(directory)

        def pair(stem: str) -> tuple[x509.Certificate, CaKey]:
            cert = x509.load_pem_x509_certificate((path / f"{stem}.pem").read_bytes())
            key = serialization.load_pem_private_key((path / f"{stem}.key").read_bytes(), None)
            assert isinstance(key, CaKey)
            return cert, key

        return cls(path, pair("root-ca"), pair("issuing-ca"))

    def issue(
        self, public_key: PublicKey, common_name: str, *, by_root: bool = False, days: int = 365
    ) -> x509.Certificate:
        """A leaf for ``public_key``, issued by the issuing CA (or by the root)."""
        return make_leaf(public_key, common_name, self.root if by_root else self.issuing, days=days)

    def issue_file(
        self, public_key: PublicKey, common_name: str, path: Path | None = None, **kw: object
    ) -> Path:
        """Issue a leaf and write it as PEM (default: ``<common_name>.pem`` in the directory)."""
        cert = self.issue(public_key, common_name, **kw)  # type: ignore[arg-type]
        target = path or self.directory / f"{common_name}.pem"
        target.write_bytes(pem(cert))
        return target

    def revoke(
        self, certificates: Sequence[x509.Certificate], *, by_root: bool = False
    ) -> x509.CertificateRevocationList:
        """A CRL of the issuing CA (or the root) that revokes ``certificates``."""
        return make_crl([cert.serial_number for cert in certificates], self.ca(by_root))

    def ca(self, by_root: bool = False) -> tuple[x509.Certificate, CaKey]:
        return self.root if by_root else self.issuing

    def new_leaf(self, kind: str, common_name: str, *, by_root: bool = False) -> tuple[Path, Path]:
        """A software key of ``kind`` and its certificate, as ``(cert path, key path)``."""
        key = new_key(kind)
        cert_path = self.issue_file(key.public_key(), common_name, by_root=by_root)
        key_path = self.directory / f"{common_name}.key"
        write_private(key_path, key_pem(key))
        return cert_path, key_path


__all__ = [
    "KEY_TYPES", "CaKey", "DevPki", "key_pem", "load_public_key", "make_ca", "make_crl",
    "make_leaf", "name", "new_key", "pem", "write_private",
]  # fmt: skip
