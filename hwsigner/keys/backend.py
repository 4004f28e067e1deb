"""The key interface every backend implements, and the options opening a key may need.

    >>> from hwsigner.keys.backend import KeyOptions
    >>> KeyOptions(pkcs8_password="secret")
    KeyOptions(pkcs11_lib=None, reuse_pin=False, no_tpm_key_password=False, tpm_tcti=None)

Its own module, below ``hwsigner.keys`` and the backends: ``keys.open_key`` imports the backends,
and a backend importing its base class from ``keys`` itself would close a loop.
"""

from __future__ import annotations

import abc
from dataclasses import dataclass, field
from types import TracebackType
from typing import Literal

from cryptography import x509

from ..sigv4x509 import PublicKey

Digest = Literal["SHA256", "SHA384", "SHA512"]


class KeyBackend(abc.ABC):
    """A private key that signs in place.

    ``sign`` hashes the message with ``digest`` and returns the signature in its wire encoding:
    PKCS#1 v1.5 for RSA, DER ``Ecdsa-Sig-Value`` for EC; an ML-DSA key signs ``message`` itself
    (pure ML-DSA, empty context) and ignores ``digest``. A backend that holds the certificate
    (a PKCS#11 token) sets ``certificate`` and, when it can build one, ``chain``.
    """

    description: str = "key"
    certificate: x509.Certificate | None = None
    chain: tuple[x509.Certificate, ...] = ()

    @property
    @abc.abstractmethod
    def public_key(self) -> PublicKey:
        """The public half, as ``cryptography`` holds it."""

    @abc.abstractmethod
    def sign(self, message: bytes, digest: Digest = "SHA256") -> bytes:
        """Sign ``message`` (hashed here or in the device) and return the wire encoding."""

    def close(self) -> None:  # noqa: B027 - most backends have nothing to release
        """Release sessions and device handles. Safe to call twice."""

    def __enter__(self) -> KeyBackend:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()


@dataclass(frozen=True, slots=True)
class KeyOptions:
    """What opening a key may need beyond its reference. Secrets stay out of ``repr``."""

    pkcs11_lib: str | None = None
    reuse_pin: bool = False
    pkcs8_password: str | None = field(default=None, repr=False)
    tpm_key_password: str | None = field(default=None, repr=False)
    no_tpm_key_password: bool = False
    tpm_tcti: str | None = None


__all__ = ["Digest", "KeyBackend", "KeyOptions", "PublicKey"]
