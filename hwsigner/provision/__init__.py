"""Device provisioning: a key made inside the hardware, a CSR it signs, its certificate, a check.

    >>> import os, tempfile
    >>> from hwsigner.keys import open_key
    >>> from hwsigner.provision.csr import build_csr, parse_subject
    >>> from hwsigner.provision.keygen import generate_key
    >>> made = generate_key(os.path.join(tempfile.mkdtemp(), "device.key"), "ec-p256")
    >>> with open_key(made.reference) as key:               # the key signs its own request
    ...     pem = build_csr(key, parse_subject("CN=device-0001,O=Acme")).pem
    >>> pem.splitlines()[0]
    b'-----BEGIN CERTIFICATE REQUEST-----'
    >>> made = generate_key("pkcs11:token=dev;object=device?pin-source=file:/run/pin",
    ...                     "ec-p256")                                 # doctest: +SKIP

The steps of a factory line, one module each: ``keygen`` (dispatching to the backends'
``generate_key``, files included), ``csr``, ``install`` (the issued certificate back
beside the key) and ``doctor`` (everything ``credential-process`` will need, checked before the
device ships).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from ..errors import ConfigError
from ..keys import PublicKey

Algorithm = Literal[
    "ec-p256", "ec-p384", "rsa-2048", "rsa-3072", "ml-dsa-44", "ml-dsa-65", "ml-dsa-87"
]
ALGORITHMS: tuple[Algorithm, ...] = (
    "ec-p256", "ec-p384", "rsa-2048", "rsa-3072", "ml-dsa-44", "ml-dsa-65", "ml-dsa-87",
)  # fmt: skip
# SoftHSM 2.6 and TPM 2.0 have no ML-DSA mechanism: these are made in files only.
FILE_ONLY: tuple[Algorithm, ...] = ("ml-dsa-44", "ml-dsa-65", "ml-dsa-87")


@dataclass(frozen=True, slots=True)
class GeneratedKey:
    """A new key: its public half, and the reference ``--private-key`` takes to use it."""

    public_key: PublicKey
    reference: str
    description: str


def check_algorithm(name: str) -> Algorithm:
    if name not in ALGORITHMS:
        raise ConfigError(
            f"unknown key algorithm {name!r}", hint=f"use one of {', '.join(ALGORITHMS)}"
        )
    return name


def curve_bits(algorithm: Algorithm) -> int:
    """The curve size of an ``ec-`` algorithm, the modulus size of an ``rsa-`` one."""
    return int(algorithm.rsplit("-", 1)[1].lstrip("p"))


__all__ = ["ALGORITHMS", "FILE_ONLY", "Algorithm", "GeneratedKey", "check_algorithm", "curve_bits"]
