"""The certificate rules as data and the one chain walk, on certificates made for each case."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.x509.oid import NameOID

from hwsigner.devpki import make_ca, make_leaf, new_key
from hwsigner.errors import ConfigError
from hwsigner.x509rules import (
    CA_RULES,
    LEAF_RULES,
    UNTRUSTED,
    broken_rules,
    chain_broken,
    chain_to_send,
    walk_chain,
)

NOW = datetime(2026, 1, 1, tzinfo=timezone.utc)
ROOT_KEY = ec.generate_private_key(ec.SECP256R1())
ROOT = make_ca("rules root", ROOT_KEY, now=NOW)
DIGITAL_SIGNATURE = x509.KeyUsage(True, False, False, False, False, False, False, False, False)


def cert(
    *,
    ca: bool = False,
    usage: x509.KeyUsage | None = DIGITAL_SIGNATURE,
    key: object = None,
    valid: tuple[int, int] = (-1, 30),
) -> x509.Certificate:
    public = key or ec.generate_private_key(ec.SECP256R1()).public_key()
    builder = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "rules leaf")]))
        .issuer_name(ROOT.subject)
        .public_key(public)  # type: ignore[arg-type]
        .serial_number(7)
        .not_valid_before(NOW + timedelta(days=valid[0]))
        .not_valid_after(NOW + timedelta(days=valid[1]))
        .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True)
    )
    if usage is not None:
        builder = builder.add_extension(usage, critical=True)
    return builder.sign(ROOT_KEY, hashes.SHA256())


def messages(certificate: x509.Certificate) -> list[str]:
    return [broken.message for broken in broken_rules(certificate, NOW)]


def test_a_good_leaf_breaks_no_rule() -> None:
    assert messages(cert()) == []
    rsa_leaf = make_leaf(new_key("rsa-2048").public_key(), "rsa", (ROOT, ROOT_KEY), now=NOW)
    assert messages(rsa_leaf) == []


SMALL_RSA = rsa.generate_private_key(65537, 1024).public_key()  # noqa: S505 - the point of the test
K1 = ec.generate_private_key(ec.SECP256K1()).public_key()
CASES = {
    "CA": (dict(ca=True), "The signing certificate must not be a CA certificate"),
    "no key usage": (
        dict(usage=None),
        "The signing certificate's key usage must include digitalSignature",
    ),
    "not yet valid": (dict(valid=(1, 30)), "The signing certificate is not yet valid"),
    "expired": (dict(valid=(-30, -1)), "The signing certificate has expired"),
    "RSA-1024": (dict(key=SMALL_RSA), "RSA keys must have at least 2048 bits"),
    "secp256k1": (
        dict(key=K1),
        "The signing certificate's key must be RSA, EC P-256/P-384/P-521 or ML-DSA",
    ),
}


@pytest.mark.parametrize("case", CASES)
def test_each_leaf_rule_names_the_service_message(case: str) -> None:
    made, expected = CASES[case]
    assert messages(cert(**made)) == [expected]  # type: ignore[arg-type]


def test_every_broken_rule_is_listed_in_the_table_order_with_a_fix() -> None:
    found = broken_rules(cert(ca=True, usage=None, valid=(-30, -1)), NOW)
    assert [broken.rule for broken in found] == [
        rule for rule in LEAF_RULES if rule.name in ("not a CA", "digitalSignature", "not expired")
    ]
    assert all(broken.fix for broken in found)


def test_every_rule_has_a_name_a_message_and_a_fix() -> None:
    for rule in (*LEAF_RULES, *CA_RULES, UNTRUSTED):
        assert rule.name and rule.message and rule.fix


def test_the_walk_links_by_name_and_signature_and_stops_at_the_anchor() -> None:
    issuing_key = ec.generate_private_key(ec.SECP256R1())
    issuing = make_ca("rules issuing", issuing_key, (ROOT, ROOT_KEY), now=NOW)
    impostor = make_ca("rules issuing", ec.generate_private_key(ec.SECP256R1()), now=NOW)
    leaf = make_leaf(new_key("ec-p256").public_key(), "leaf", (issuing, issuing_key), now=NOW)
    path = walk_chain(leaf, [impostor, issuing], [ROOT])
    assert path.links == (issuing,) and path.unused == (impostor,) and path.anchor == ROOT
    assert list(chain_broken(path, NOW)) == []
    lost = walk_chain(leaf, [impostor], [ROOT])
    assert lost.anchor is None
    assert [broken.rule for broken in chain_broken(lost, NOW)] == [UNTRUSTED]


def test_a_path_length_of_zero_allows_no_ca_below() -> None:
    key = ec.generate_private_key(ec.SECP256R1())
    strict = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "strict root")]))
        .issuer_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "strict root")]))
        .public_key(key.public_key())
        .serial_number(1)
        .not_valid_before(NOW - timedelta(days=1))
        .not_valid_after(NOW + timedelta(days=30))
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .sign(key, hashes.SHA256())
    )
    issuing_key = ec.generate_private_key(ec.SECP256R1())
    issuing = make_ca("under strict", issuing_key, (strict, key), now=NOW)
    leaf = make_leaf(new_key("ec-p256").public_key(), "leaf", (issuing, issuing_key), now=NOW)
    found = [b.message for b in chain_broken(walk_chain(leaf, [issuing], [strict]), NOW)]
    assert found == ["The trust anchor's path length constraint allows 0 CA certificates below it"]
    direct = make_leaf(new_key("ec-p256").public_key(), "leaf", (strict, key), now=NOW)
    assert list(chain_broken(walk_chain(direct, [], [strict]), NOW)) == []


def test_the_chain_to_send_drops_the_leaf_and_repeats_and_holds_five() -> None:
    leaf = cert()
    assert chain_to_send(leaf, [leaf, ROOT, ROOT]) == (ROOT,)
    many = [make_ca(f"ca {n}", ROOT_KEY, now=NOW) for n in range(6)]
    with pytest.raises(ConfigError, match="at most 5"):
        chain_to_send(leaf, many)
