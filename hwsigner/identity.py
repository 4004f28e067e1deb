"""The identity a request is signed with: the leaf certificate, its chain, and its key.

    >>> from hwsigner.identity import load_identity
    >>> identity, key = load_identity(certificate="leaf.pem", private_key="leaf.key",
    ...                               intermediates="issuing-ca.pem")   # doctest: +SKIP
    >>> identity.certificate.serial_number                            # doctest: +SKIP
    4242

Where each part comes from follows AWS's helper: the certificate may carry the key (a combo PEM,
a PKCS#12 file, a ``pkcs11:`` URI); ``--private-key`` names it otherwise. The key must match the
certificate, compared by public key, before anything is sent.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field

from cryptography import x509
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat, pkcs12

from ._safe import read_user_file
from .errors import CertificateError, ConfigError, PasswordError
from .keys import KeyBackend, KeyOptions, PublicKey, open_key
from .sigv4x509 import MAX_CHAIN, x509_headers

log = logging.getLogger("hwsigner")


@dataclass(frozen=True, slots=True)
class Identity:
    """The leaf certificate and the intermediates sent with it (never the leaf itself).

    ``headers`` are its ``X-Amz-X509`` headers, encoded once: a long-running process signs with
    one identity again and again, and the encoding costs more than the rest of the signing.
    """

    certificate: x509.Certificate
    chain: tuple[x509.Certificate, ...] = ()
    headers: tuple[tuple[str, str], ...] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "headers", x509_headers(self.certificate, self.chain))


@dataclass(frozen=True, slots=True)
class CertificateFile:
    """What a certificate file holds: the leaf, any further certificates, and maybe the key."""

    certificate: x509.Certificate
    others: tuple[x509.Certificate, ...]
    key: KeyBackend | None


def load_identity(
    certificate: str | None,
    private_key: str | None = None,
    intermediates: str | None = None,
    options: KeyOptions | None = None,
) -> tuple[Identity, KeyBackend]:
    """Open the key, read the certificates and check that they belong together."""
    options = options or KeyOptions()
    if not certificate and not private_key:
        raise ConfigError(
            "no certificate and no private key given",
            hint="pass --certificate (a PEM/PKCS#12 file or a pkcs11: URI) and --private-key",
        )
    chain: tuple[x509.Certificate, ...] = ()
    if certificate and not certificate.startswith("pkcs11:"):
        found = read_certificate_file(certificate, options.pkcs8_password)
        if private_key:
            # a pkcs11: key uses the certificate file to pick the token key it belongs to
            key = open_key(private_key, options, certificate_ref=certificate)
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
        check_key_matches(leaf, key.public_key)
        if intermediates:
            chain = read_certificates(intermediates)
        identity = Identity(leaf, checked_chain(leaf, chain))
    except BaseException:
        key.close()
        raise
    log.debug(
        "key: %s; certificate serial %d; chain of %d",
        key.description,
        leaf.serial_number,
        len(identity.chain),
    )
    return identity, key


def check_key_matches(certificate: x509.Certificate, public_key: PublicKey) -> None:
    if spki(certificate.public_key()) != spki(public_key):
        raise CertificateError(
            "the private key does not match the certificate",
            hint="use the key the certificate was issued for (compare their public keys)",
        )


def spki(public_key: object) -> bytes:
    return public_key.public_bytes(  # type: ignore[attr-defined,no-any-return]
        Encoding.DER, PublicFormat.SubjectPublicKeyInfo
    )


def checked_chain(
    leaf: x509.Certificate, chain: tuple[x509.Certificate, ...]
) -> tuple[x509.Certificate, ...]:
    """Drop the leaf and repeats from the chain, and hold it to the service's limit of five."""
    kept: list[x509.Certificate] = []
    for cert in chain:
        if cert != leaf and cert not in kept:
            kept.append(cert)
    if len(kept) > MAX_CHAIN:
        raise ConfigError(
            f"the chain has {len(kept)} certificates; Roles Anywhere accepts at most {MAX_CHAIN}",
            hint="pass only the intermediates between the leaf and the trust anchor",
        )
    return tuple(kept)


def read_bytes(path: str, what: str, flag: str) -> bytes:
    return read_user_file(path, what, flag)


def read_certificates(path: str, flag: str = "--intermediates") -> tuple[x509.Certificate, ...]:
    """Every certificate of a PEM bundle (or one DER certificate)."""
    data = read_bytes(path, "certificate", flag)
    return parse_certificates(data, path, flag)


def parse_certificates(data: bytes, source: str, flag: str) -> tuple[x509.Certificate, ...]:
    try:
        if b"-----BEGIN CERTIFICATE-----" in data:
            return tuple(x509.load_pem_x509_certificates(data))
        return (x509.load_der_x509_certificate(data),)
    except ValueError:
        raise CertificateError(
            f"{source} holds no readable X.509 certificate",
            hint=f"give {flag} a PEM or DER certificate file",
        ) from None


def read_certificate_file(path: str, password: str | None = None) -> CertificateFile:
    """A PEM/DER certificate, a combo PEM with its key, or a PKCS#12 file."""
    from .keys.file import FileKey, parse_private_key

    data = read_bytes(path, "certificate", "--certificate")
    if b"-----BEGIN" not in data and not _looks_like_certificate(data):
        return read_pkcs12(data, path, password)
    certs = parse_certificates(data, path, "--certificate")
    key = None
    if b"PRIVATE KEY-----" in data and b"TSS2 PRIVATE KEY" not in data:
        key = FileKey(parse_private_key(data, path, password), f"file {path}")
    return CertificateFile(certs[0], certs[1:], key)


def _looks_like_certificate(der: bytes) -> bool:
    try:
        x509.load_der_x509_certificate(der)
    except ValueError:
        return False
    return True


def read_pkcs12(data: bytes, path: str, password: str | None) -> CertificateFile:
    from ._tty import ask_secret
    from .keys.file import FileKey, secret_from_env

    if password is None:
        password = secret_from_env("HWSIGNER_PKCS8_PASSWORD")
    try:
        loaded = _load_pkcs12(data, password)
        if loaded is None and password is None:
            password = ask_secret(
                f"Password for {path}: ", instead="--pkcs8-password or HWSIGNER_PKCS8_PASSWORD"
            )
            loaded = _load_pkcs12(data, password)
    except ValueError:
        raise CertificateError(
            f"{path} is not a certificate (PEM or DER) or a PKCS#12 file",
            hint="give --certificate a PEM certificate, a PKCS#12 file or a pkcs11: URI",
        ) from None
    if loaded is None:
        raise PasswordError(
            f"wrong password for the PKCS#12 file {path}",
            hint="pass --pkcs8-password, set HWSIGNER_PKCS8_PASSWORD, or run it on a terminal",
        )
    if loaded.cert is None or loaded.key is None:
        raise CertificateError(
            f"{path} must hold a certificate and its private key",
            hint="export the PKCS#12 file with both the certificate and the key",
        )
    others = tuple(c.certificate for c in loaded.additional_certs)
    return CertificateFile(loaded.cert.certificate, others, FileKey(loaded.key, f"file {path}"))  # type: ignore[arg-type]


def _load_pkcs12(data: bytes, password: str | None) -> pkcs12.PKCS12KeyAndCertificates | None:
    """The parsed file, or None when the password is wrong (or one is needed)."""
    try:
        return pkcs12.load_pkcs12(data, password.encode() if password is not None else None)
    except ValueError as exc:
        if "password" in str(exc).lower() or "mac" in str(exc).lower():
            return None
        raise
