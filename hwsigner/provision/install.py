"""Installing an issued certificate where the device will find it, after checking it fits the key.

    >>> import tempfile
    >>> from hwsigner.devpki import DevPki
    >>> from hwsigner.provision.install import import_certificate
    >>> pki = DevPki.create(tempfile.mkdtemp())
    >>> cert, key = pki.new_leaf("ec-p256", "device")          # issued for this key
    >>> out = pki.directory / "installed.pem"
    >>> done = import_certificate(str(cert), str(key), chain=str(pki.issuing_cert), out=str(out))
    >>> done.certificate_ref == str(out), out.read_text().count("BEGIN CERTIFICATE")  # leaf, CA
    (True, 2)
    >>> done = import_certificate("device.pem", "pkcs11:token=dev;object=device?pin-value=1234",
    ...                           chain="issuing-ca.pem")               # doctest: +SKIP
    >>> done.certificate_ref                                            # doctest: +SKIP
    'pkcs11:token=dev;id=%01;object=device'

For a ``pkcs11:`` key the certificate (and the chain's CA certificates) goes onto the token
beside the key (``hwsigner.keys.pkcs11.install_certificate``). For TPM and file keys the key is
opened and compared, and the certificate, followed by its intermediates, is written to ``out``
when one is given. Nothing is written unless the certificate's public key is the key's and the
chain links up.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

from cryptography import x509
from cryptography.hazmat.primitives.serialization import Encoding

from .._safe import replace_file
from ..errors import CertificateError, ConfigError, needs_extra
from ..keys import KeyOptions, key_kind, open_key
from ..x509certs import describe, is_ca, is_self_signed, read_certificates, spki
from ..x509rules import walk_chain


@dataclass(frozen=True, slots=True)
class Installed:
    """What was installed: the certificate, the CAs above it, and where it went."""

    certificate: x509.Certificate
    chain: tuple[x509.Certificate, ...]
    certificate_ref: str | None  # what --certificate takes now (None: nothing was written)
    key_description: str


def read_issued(
    certificate: str, chain: str | None
) -> tuple[x509.Certificate, tuple[x509.Certificate, ...]]:
    """The leaf (first in its file) and the CA certificates above it, nearest first.

    Further certificates in the leaf's file count as chain. Each must be a CA on the path from
    the leaf upwards; one that is not is refused rather than stored where it misleads.
    """
    found = read_certificates(certificate, "--certificate")
    leaf, candidates = found[0], list(found[1:])
    if chain:
        candidates += [c for c in read_certificates(chain, "--chain") if c not in candidates]
    for cert in candidates:
        if not is_ca(cert):
            raise CertificateError(
                f"{describe(cert)} in the chain is not a CA certificate; nothing was changed",
                hint="give --chain the issuing CA certificates only",
            )
    path = walk_chain(leaf, candidates)
    if path.unused:
        raise CertificateError(
            f"{describe(path.unused[0])} in the chain did not issue "
            f"{describe(path.links[-1]) if path.links else 'the certificate'}; nothing was changed",
            hint="give --chain the CA certificates from the issuer of the certificate upwards",
        )
    return leaf, path.links


def import_certificate(
    certificate: str,
    private_key: str,
    *,
    chain: str | None = None,
    out: str | None = None,
    options: KeyOptions | None = None,
    replace: bool = False,
) -> Installed:
    """Check ``certificate`` against the key, then store it beside the key and/or in ``out``."""
    options = options or KeyOptions()
    leaf, links = read_issued(certificate, chain)
    if out and os.path.lexists(out) and not replace:
        raise ConfigError(
            f"{out} already exists; nothing was changed",
            hint="pass --replace to overwrite it, or choose another --out",
        )
    reference = None
    if key_kind(private_key) == "pkcs11":
        with needs_extra("pkcs11"):
            from ..keys import pkcs11
        reference = pkcs11.install_certificate(
            private_key, leaf, links, options.pkcs11_lib, replace=replace
        )
        description = reference
    else:
        with open_key(private_key, options) as key:
            description = key.description
            if spki(key.public_key) != spki(leaf.public_key()):
                raise CertificateError(
                    f"the certificate's public key is not the key's ({key.description}); "
                    "nothing was changed",
                    hint="install the certificate issued for this key (from its own CSR)",
                )
    if out:
        sent = [cert for cert in links if not is_self_signed(cert)]
        write_atomically(out, b"".join(c.public_bytes(Encoding.PEM) for c in (leaf, *sent)))
        reference = reference or out
    return Installed(leaf, links, reference, description)


def write_atomically(path: str, data: bytes) -> None:
    """Replace ``path`` whole (``_safe.replace_file``), keeping its mode; new files are 0644."""
    try:
        mode = os.stat(path).st_mode & 0o7777 if os.path.exists(path) else 0o644
        replace_file(path, data, mode)
    except OSError as exc:
        raise ConfigError(f"cannot write {path}: {exc.strerror}", hint="check --out") from None


__all__ = ["Installed", "import_certificate", "read_issued", "write_atomically"]
