"""The identity a request is signed with: the leaf certificate, its chain, and its key.

    >>> import tempfile
    >>> from hwsigner.devpki import DevPki
    >>> from hwsigner.identity import load_identity
    >>> pki = DevPki.create(tempfile.mkdtemp())        # a test CA; a device key it certifies
    >>> cert, key = pki.new_leaf("ec-p256", "device")
    >>> identity, key = load_identity(certificate=str(cert), private_key=str(key),
    ...                               intermediates=str(pki.issuing_cert))
    >>> identity.certificate.subject.rfc4514_string(), len(identity.chain)
    ('CN=device,O=hwsigner dev', 1)

Where each part comes from follows AWS's helper: the certificate may carry the key (a combo PEM,
a PKCS#12 file, a ``pkcs11:`` URI); ``--private-key`` names it otherwise. The key must match the
certificate, compared by public key, before anything is sent.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

from cryptography import x509

from ._log import debug
from ._safe import read_user_file
from .errors import CertificateError, ConfigError
from .keys import KeyBackend, KeyOptions, PublicKey, open_key
from .sigv4x509 import CertificateHeaders, algorithm_for, x509_headers
from .x509certs import (
    is_der_certificate,
    is_mldsa,
    parse_certificates,
    read_certificates,
    spki,
)
from .x509rules import chain_to_send


@dataclass(frozen=True, slots=True)
class Identity:
    """The leaf certificate and the intermediates sent with it (never the leaf itself).

    ``headers`` are its ``X-Amz-X509`` headers, encoded once: a long-running process signs with
    one identity again and again, and the encoding costs more than the rest of the signing.
    """

    certificate: x509.Certificate
    chain: tuple[x509.Certificate, ...] = ()
    headers: CertificateHeaders = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "headers", x509_headers(self.certificate, self.chain))

    def signer(self, key: KeyBackend) -> KeySigner:
        """This identity with the key it signs with, as ``sigv4x509.sign`` takes them."""
        return KeySigner(self, key)


@dataclass(frozen=True, slots=True)
class KeySigner:
    """A ``sigv4x509.Signer``: the leaf's serial and headers, the key's algorithm and signature."""

    identity: Identity
    key: KeyBackend
    algorithm: str = field(init=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "algorithm", algorithm_for(self.key.public_key))

    @property
    def serial(self) -> int:
        return self.identity.certificate.serial_number

    @property
    def certificate_headers(self) -> CertificateHeaders:
        return self.identity.headers

    def sign(self, message: bytes) -> bytes:
        return self.key.sign(message)


@dataclass(frozen=True, slots=True)
class CertificateFile:
    """What a certificate file holds: the leaf, any further certificates, maybe the key, and
    the password that opened a PKCS#12 file."""

    certificate: x509.Certificate
    others: tuple[x509.Certificate, ...]
    key: KeyBackend | None
    password: str | None = field(default=None, repr=False)


@dataclass(frozen=True, slots=True)
class OpenedIdentity:
    """An identity with its open key, and the password that opened a PKCS#12 certificate file
    (``hwsigner.certwatch`` reads a renewed file with it, never asking again)."""

    identity: Identity
    key: KeyBackend
    password: str | None = field(default=None, repr=False)


CertificateSource = str | bytes | x509.Certificate
KeySource = str | bytes | KeyBackend | object  # object: a cryptography private key
ChainSource = str | bytes | Sequence[x509.Certificate]


def load_identity(
    certificate: CertificateSource | None,
    private_key: KeySource | None = None,
    intermediates: ChainSource | None = None,
    options: KeyOptions | None = None,
) -> tuple[Identity, KeyBackend]:
    """Open the key, read the certificates and check that they belong together.

    Each may be a reference (a path, ``pkcs11:`` URI, ``env:NAME``, ``fd:N``) or, from Python,
    what it holds: PEM/DER ``bytes``, a ``cryptography`` certificate or private key, a
    ``KeyBackend``, a sequence of certificates for ``intermediates``.
    """
    opened = open_identity(certificate, private_key, intermediates, options)
    return opened.identity, opened.key


def open_identity(
    certificate: CertificateSource | None,
    private_key: KeySource | None = None,
    intermediates: ChainSource | None = None,
    options: KeyOptions | None = None,
) -> OpenedIdentity:
    """``load_identity``, keeping what a long-running process needs to read its files again."""
    options = options or KeyOptions()
    if not isinstance(certificate, str | None) or not isinstance(private_key, str | None):
        return _identity_from_values(certificate, private_key, intermediates, options)
    if not certificate and not private_key:
        raise ConfigError(
            "no certificate and no private key given",
            hint="pass --certificate (a PEM/PKCS#12 file or a pkcs11: URI) and --private-key",
        )
    chain: tuple[x509.Certificate, ...] = ()
    password = None
    if certificate and not certificate.startswith("pkcs11:"):
        found = read_certificate_file(certificate, options.pkcs8_password)
        password = found.password
        if private_key:
            # a pkcs11: key uses the certificate to pick the token key it belongs to
            key = open_key(private_key, options, certificate_ref=found.certificate)
        elif found.key is not None:
            key = found.key
        else:
            raise ConfigError(
                f"{certificate} holds no private key",
                hint="pass --private-key (a key file, a pkcs11: URI or a TPM key)",
            )
        leaf, chain = found.certificate, found.others
    else:
        key = open_key(private_key or certificate or "", options, certificate_ref=certificate)
        if key.certificate is None:
            key.close()
            raise ConfigError(
                "no certificate given", hint="pass --certificate (a PEM file or a pkcs11: URI)"
            )
        leaf, chain = key.certificate, key.chain
    try:
        if not (private_key or certificate or "").startswith("pkcs11:"):
            check_key_matches(leaf, key.public_key)  # a token key was chosen by it already
        if intermediates:
            chain = chain_from(intermediates)
        identity = Identity(leaf, chain_to_send(leaf, chain))
    except BaseException:
        key.close()
        raise
    debug(
        "key: %s; certificate serial %d; chain of %d",
        key.description,
        leaf.serial_number,
        len(identity.chain),
    )
    return OpenedIdentity(identity, key, password)


def _identity_from_values(
    certificate: CertificateSource | None,
    private_key: KeySource | None,
    intermediates: ChainSource | None,
    options: KeyOptions,
) -> OpenedIdentity:
    """``load_identity`` when the certificate or the key is given as a value, not a reference."""
    from .keys.file import FileKey

    found = None
    if isinstance(certificate, x509.Certificate):
        found = CertificateFile(certificate, (), None)
    elif isinstance(certificate, bytes):
        found = certificate_from_bytes(certificate, "certificate (bytes)", options.pkcs8_password)
    elif isinstance(certificate, str):
        found = read_certificate_file(certificate, options.pkcs8_password)
    if isinstance(private_key, KeyBackend):
        key = private_key
    elif isinstance(private_key, bytes):
        key = FileKey.from_pem(
            private_key, source="private key (bytes)", password=options.pkcs8_password
        )
    elif isinstance(private_key, str):
        key = open_key(private_key, options)
    elif private_key is not None:
        key = FileKey(private_key)  # type: ignore[arg-type]  # checked there
    elif found is not None and found.key is not None:
        key = found.key
    else:
        raise ConfigError("no private key given", hint="pass private_key (bytes, a key or a path)")
    if found is None:
        raise ConfigError(
            "no certificate given", hint="pass certificate (bytes, a certificate or a path)"
        )
    try:
        check_key_matches(found.certificate, key.public_key)
        chain = chain_from(intermediates) if intermediates else found.others
        identity = Identity(found.certificate, chain_to_send(found.certificate, chain))
    except BaseException:
        key.close()
        raise
    return OpenedIdentity(identity, key, found.password)


def chain_from(intermediates: ChainSource) -> tuple[x509.Certificate, ...]:
    """The intermediates: read from a reference, parsed from bytes, or given as certificates."""
    if isinstance(intermediates, str):
        return read_certificates(intermediates)
    if isinstance(intermediates, bytes):
        return parse_certificates(intermediates, "intermediates (bytes)", "intermediates")
    return tuple(intermediates)


def check_key_matches(certificate: x509.Certificate, public_key: PublicKey) -> None:
    if spki(certificate.public_key()) != spki(public_key):
        if is_mldsa(certificate.public_key()) and not is_mldsa(public_key):
            raise CertificateError(
                "the certificate has an ML-DSA key and the private key is no ML-DSA key (ML-DSA "
                "keys live in files only: SoftHSM 2.6 and TPM 2.0 have no ML-DSA)",
                hint="pass --private-key the ML-DSA key file the certificate was issued for",
            )
        raise CertificateError(
            "the private key does not match the certificate",
            hint="use the key the certificate was issued for (compare their public keys)",
        )


def read_certificate_file(path: str, password: str | None = None) -> CertificateFile:
    """A PEM/DER certificate, a combo PEM with its key, or a PKCS#12 file."""
    return certificate_from_bytes(
        read_user_file(path, "certificate", "--certificate"), path, password
    )


def certificate_from_bytes(data: bytes, path: str, password: str | None = None) -> CertificateFile:
    """``read_certificate_file`` for bytes already read; ``path`` names them in errors."""
    from .keys.file import FileKey, load_pkcs12

    if b"-----BEGIN" not in data and not is_der_certificate(data):
        found = load_pkcs12(data, path, password)
        return CertificateFile(found.certificate, found.others, found.key, found.password)
    certs = parse_certificates(data, path, "--certificate")
    key = None
    if b"PRIVATE KEY-----" in data and b"TSS2 PRIVATE KEY" not in data:
        key = FileKey.from_pem(data, source=path, password=password)
    return CertificateFile(certs[0], certs[1:], key)


__all__ = [
    "CertificateFile",
    "Identity",
    "KeySigner",
    "OpenedIdentity",
    "certificate_from_bytes",
    "chain_from",
    "check_key_matches",
    "load_identity",
    "open_identity",
    "read_certificate_file",
]
