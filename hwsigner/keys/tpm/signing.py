"""What signing with a TPM key takes: the key to load, its public key, its limits, the scheme
and the encoding.

    >>> import hashlib
    >>> from tpm2_pytss.types import TPMT_PUBLIC
    >>> from hwsigner.keys.tpm.signing import signing_plan
    >>> plan = signing_plan(TPMT_PUBLIC.parse("ecc384"), "SHA256", "a P-384 key")
    >>> len(plan.tpm_digest(hashlib.sha256(b"message").digest()))  # declared as SHA-384
    48

Values, and pure functions over a key's ``TPMT_PUBLIC``; no TPM commands. ECDSA declares the
hash whose size matches the curve and hands the TPM the message's hash padded (or truncated) to
that size, as AWS's helper does: the TPM checks that a digest has its declared hash's size, while
ECDSA itself uses only the integer value of the leftmost curve-size bytes, which the padding
keeps.
"""

from __future__ import annotations

from dataclasses import dataclass

from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.hazmat.primitives.asymmetric.utils import encode_dss_signature
from tpm2_pytss import TSS2_Exception
from tpm2_pytss.constants import TPM2_ALG, TPM2_ECC, TPMA_OBJECT
from tpm2_pytss.types import (
    TPM2B_PRIVATE,
    TPM2B_PUBLIC,
    TPMS_SCHEME_HASH,
    TPMT_PUBLIC,
    TPMT_SIG_SCHEME,
    TPMT_SIGNATURE,
    TPMU_SIG_SCHEME,
)

from ...errors import KeySourceError
from ..backend import Digest, PublicKey
from .device import parse_handle
from .keyfile import KeyFileError, TpmKeyFile

HASH_ALGS = {"SHA256": TPM2_ALG.SHA256, "SHA384": TPM2_ALG.SHA384, "SHA512": TPM2_ALG.SHA512}
HASH_BY_SIZE = {32: TPM2_ALG.SHA256, 48: TPM2_ALG.SHA384, 64: TPM2_ALG.SHA512}
SIZE_BY_HASH = {alg: size for size, alg in HASH_BY_SIZE.items()}
CURVES: dict[int, tuple[type[ec.EllipticCurve], int]] = {
    TPM2_ECC.NIST_P256: (ec.SECP256R1, 32),
    TPM2_ECC.NIST_P384: (ec.SECP384R1, 48),
    TPM2_ECC.NIST_P521: (ec.SECP521R1, 66),
}
MIN_RSA_BITS = 2048


@dataclass(frozen=True, slots=True)
class KeyRef:
    """A ``handle:`` reference or a read key file: what to load again on a new connection."""

    description: str
    handle: int = 0
    keyfile: TpmKeyFile | None = None
    blobs: tuple[TPM2B_PUBLIC, TPM2B_PRIVATE] | None = None

    @classmethod
    def parse(cls, ref: str) -> KeyRef:
        if ref.startswith("handle:"):
            handle = parse_handle(ref)
            return cls(f"TPM key 0x{handle:08x}", handle=handle)
        keyfile = TpmKeyFile.load(ref)
        check_keyfile(keyfile, ref)
        return cls(f"TPM key {ref}", keyfile=keyfile, blobs=unmarshal_keyfile(keyfile, ref))


def public_key_of(area: TPMT_PUBLIC) -> PublicKey:
    """The ``cryptography`` public key for a TPM public area (RSA or NIST-curve EC)."""
    if area.type == TPM2_ALG.RSA:
        exponent = int(area.parameters.rsaDetail.exponent) or 65537  # 0 means the default
        modulus = int.from_bytes(bytes(area.unique.rsa), "big")
        return rsa.RSAPublicNumbers(exponent, modulus).public_key()
    curve = CURVES[area.parameters.eccDetail.curveID][0]()
    x = int.from_bytes(bytes(area.unique.ecc.x), "big")
    y = int.from_bytes(bytes(area.unique.ecc.y), "big")
    return ec.EllipticCurvePublicNumbers(x, y, curve).public_key()


def check_signing_key(area: TPMT_PUBLIC, description: str) -> None:
    """Refuse, up front, keys the TPM would not let us use for Roles Anywhere signatures."""
    attributes = int(area.objectAttributes)
    problem = None
    if area.type == TPM2_ALG.ECC:
        if area.parameters.eccDetail.curveID not in CURVES:
            problem = "is on an EC curve IAM Roles Anywhere does not accept"
        elif area.parameters.eccDetail.scheme.scheme not in (TPM2_ALG.NULL, TPM2_ALG.ECDSA):
            problem = "is bound to a signing scheme other than ECDSA"
    elif area.type == TPM2_ALG.RSA:
        if int(area.parameters.rsaDetail.keyBits) < MIN_RSA_BITS:
            problem = f"is an RSA key shorter than {MIN_RSA_BITS} bits"
        elif area.parameters.rsaDetail.scheme.scheme not in (TPM2_ALG.NULL, TPM2_ALG.RSASSA):
            problem = "is bound to a scheme other than RSASSA (PKCS#1 v1.5)"
    else:
        problem = "is neither an RSA nor an EC key"
    if problem is None and not attributes & TPMA_OBJECT.SIGN_ENCRYPT:
        problem = "is not a signing key (its sign attribute is clear)"
    if problem is None and attributes & TPMA_OBJECT.RESTRICTED:
        problem = "is a restricted key, which signs only digests the TPM made itself"
    if problem is None and not attributes & TPMA_OBJECT.USERWITHAUTH:
        problem = "can only be used through a policy session, which hwsigner does not support"
    if problem is not None:
        raise KeySourceError(
            f"{description} {problem}",
            hint="use an unrestricted RSA (2048+) or EC (P-256, P-384) signing key",
        )


def check_keyfile(keyfile: TpmKeyFile, ref: str) -> None:
    """Refuse, up front, key files that need what hwsigner does not do (policies, import)."""
    if keyfile.has_policy:
        raise KeySourceError(
            f"{ref} is a TPM key with a policy, which hwsigner does not support",
            hint="make the key with a password (or none) instead of a policy",
        )
    if keyfile.secret is not None:
        raise KeySourceError(
            f"{ref} must be imported into the TPM before it can be loaded",
            hint="import it with tpm2_import, then write it out with tpm2_encodeobject",
        )


def unmarshal_keyfile(keyfile: TpmKeyFile, ref: str) -> tuple[TPM2B_PUBLIC, TPM2B_PRIVATE]:
    try:
        public, public_used = TPM2B_PUBLIC.unmarshal(keyfile.public)
        private, private_used = TPM2B_PRIVATE.unmarshal(keyfile.private)
        # the unmarshalling is lenient; what does not marshal back to the same bytes is garbage
        well_formed = (public_used, private_used) == (len(keyfile.public), len(keyfile.private))
        well_formed = well_formed and public.marshal() == keyfile.public
    except TSS2_Exception:
        well_formed = False
    if not well_formed:
        raise KeyFileError(
            f"{ref} is not a usable TSS2 PRIVATE KEY file: its pubkey or privkey is malformed",
            hint="give a key file written by tpm2-openssl, tpm2_encodeobject or hwsigner keygen",
        )
    return public, private


@dataclass(frozen=True, slots=True)
class SigningPlan:
    """What the TPM is told when a key signs one kind of digest: the scheme, and the size the
    digest must have. Worked out once per key and digest: reading a public area and building a
    scheme through tpm2-pytss costs a tenth of a swtpm signature."""

    scheme: TPMT_SIG_SCHEME
    digest_size: int | None = None  # ECDSA: the declared hash's size; None: the hash as it is
    curve_size: int = 0

    def tpm_digest(self, hashed: bytes) -> bytes:
        if self.digest_size is None:
            return hashed
        # ECDSA uses the leftmost curve-size bytes of the hash; zeros on the left keep its value
        return hashed[: self.curve_size].rjust(self.digest_size, b"\0")


def signing_plan(area: TPMT_PUBLIC, digest: Digest, description: str) -> SigningPlan:
    """The scheme to declare to the TPM for ``digest``, and how to fit the hash to it."""
    if area.type == TPM2_ALG.RSA:
        fixed = area.parameters.rsaDetail.scheme
        if fixed.scheme == TPM2_ALG.RSASSA and fixed.details.anySig.hashAlg != HASH_ALGS[digest]:
            raise KeySourceError(
                f"{description} is bound to RSASSA with another hash; it cannot sign {digest}",
                hint="use the digest the key was made for",
            )
        return SigningPlan(_scheme(TPM2_ALG.RSASSA, HASH_ALGS[digest]))
    curve_size = CURVES[area.parameters.eccDetail.curveID][1]
    fixed = area.parameters.eccDetail.scheme
    if fixed.scheme == TPM2_ALG.ECDSA:
        size = SIZE_BY_HASH[fixed.details.anySig.hashAlg]
    else:  # like AWS's helper: declare the hash whose size matches the curve (capped at 64)
        size = min(curve_size, 64)
    if not min(SIZE_BY_HASH[HASH_ALGS[digest]], curve_size) <= size <= curve_size:
        raise KeySourceError(
            f"{description} is bound to a hash that cannot carry a {digest} digest",
            hint="use the digest the key was made for",
        )
    return SigningPlan(_scheme(TPM2_ALG.ECDSA, HASH_BY_SIZE[size]), size, curve_size)


def _scheme(kind: int, hash_alg: int) -> TPMT_SIG_SCHEME:
    details = TPMS_SCHEME_HASH(hashAlg=hash_alg)
    if kind == TPM2_ALG.RSASSA:
        return TPMT_SIG_SCHEME(scheme=kind, details=TPMU_SIG_SCHEME(rsassa=details))
    return TPMT_SIG_SCHEME(scheme=kind, details=TPMU_SIG_SCHEME(ecdsa=details))


def wire_signature(signature: TPMT_SIGNATURE, public_key: PublicKey) -> bytes:
    """PKCS#1 v1.5 bytes for RSA; DER ``Ecdsa-Sig-Value`` from the TPM's raw r and s for EC.

    Read from the marshalled ``TPMT_SIGNATURE`` (sigAlg, hash, then the ``TPM2B`` fields: the
    RSA signature, or r and s), one C call where tpm2-pytss's attribute path costs ten times more.
    """
    data = signature.marshal()
    first, end = _tpm2b(data, 4)
    if isinstance(public_key, rsa.RSAPublicKey):
        return first.rjust((public_key.key_size + 7) // 8, b"\0")
    second, _ = _tpm2b(data, end)
    return encode_dss_signature(int.from_bytes(first, "big"), int.from_bytes(second, "big"))


def _tpm2b(data: bytes, offset: int) -> tuple[bytes, int]:
    """The ``TPM2B`` (a 2-byte big-endian size, then the bytes) at ``offset``, and its end."""
    end = offset + 2 + int.from_bytes(data[offset : offset + 2], "big")
    return data[offset + 2 : end], end


__all__ = [
    "KeyRef", "SigningPlan", "check_keyfile", "check_signing_key", "public_key_of", "signing_plan",
    "unmarshal_keyfile", "wire_signature",
]  # fmt: skip
