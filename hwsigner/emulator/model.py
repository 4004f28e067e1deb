"""The emulator's model of a Roles Anywhere account: trust anchors, profiles, roles and CRLs.

    >>> ra = "arn:aws:rolesanywhere:us-east-1:111122223333:"
    >>> model = Model.parse({"trustAnchors": [], "profiles": [{"profileArn": ra + "profile/p",
    ...     "roleArns": ["arn:aws:iam::111122223333:role/device"]}]})  # or Model.load(path)
    >>> model.profile(ra + "profile/p").role_arns
    ('arn:aws:iam::111122223333:role/device',)

The file is JSON shaped like the AWS API objects, so ``aws rolesanywhere get-trust-anchor``,
``get-profile``, ``get-crl`` and ``aws iam get-role`` answers can be pasted in (their wrappers
``trustAnchor``, ``profile``, ``crl`` and ``Role`` too); keys the emulator does not use are
ignored. A mistake is one line naming the place in the file, e.g. ``profiles[0].roleArns``.
``Model.short_form`` is ``--trust-anchor CA.pem``: any ARNs, every CA trusted, no policies.
"""

from __future__ import annotations

import base64
from dataclasses import dataclass, replace
from typing import Any
from urllib.parse import unquote

from cryptography import x509

from .._safe import load_json, read_user_file
from ..errors import ConfigError
from ..x509certs import is_ca
from .certs import TrustAnchors
from .crl import PEM_CRL, Revocations, parse_crls
from .policy import Statement, parse_policy

# The profile's default, when it names no attribute mapping: "all supported RDNs from the
# Subject and the Issuer, the first DNS name, directory name and URI of the SAN"
# (https://docs.aws.amazon.com/rolesanywhere/latest/userguide/attribute-mapping.html).
DEFAULT_MAPPING = (
    ("x509Subject", ("*",)),
    ("x509Issuer", ("*",)),
    ("x509SAN", ("DNS", "URI", "Name/*")),
)
FIELDS = frozenset(name for name, _ in DEFAULT_MAPPING)
DEFAULT_DURATION = 3600  # a profile's durationSeconds and a role's MaxSessionDuration
Mapping = tuple[tuple[str, tuple[str, ...]], ...]


@dataclass(frozen=True, slots=True)
class TrustAnchor:
    arn: str
    enabled: bool
    certificates: tuple[x509.Certificate, ...]


@dataclass(frozen=True, slots=True)
class Profile:
    arn: str
    enabled: bool
    role_arns: tuple[str, ...]
    duration: int = DEFAULT_DURATION
    accept_role_session_name: bool = False
    require_instance_properties: bool = False
    mapping: Mapping = DEFAULT_MAPPING
    default_mapping: bool = True


@dataclass(frozen=True, slots=True)
class Role:
    arn: str
    max_duration: int
    statements: tuple[Statement, ...]


@dataclass(frozen=True, slots=True)
class Crl:
    trust_anchor_arn: str | None  # None: applies whatever the trust anchor (``--crl``)
    enabled: bool
    crl: x509.CertificateRevocationList


@dataclass(frozen=True, slots=True)
class Model:
    trust_anchors: tuple[TrustAnchor, ...]
    profiles: tuple[Profile, ...] = ()
    roles: tuple[Role, ...] = ()
    crls: tuple[Crl, ...] = ()
    short: bool = False  # the short form: any ARNs, every CA, no profile or role checks

    @classmethod
    def short_form(cls, anchors: TrustAnchors) -> Model:
        return cls((TrustAnchor("*", True, anchors.certificates),), short=True)

    @classmethod
    def load(cls, path: str) -> Model:
        try:
            data = load_json(read_user_file(path, "model", "--config"))
        except ValueError:
            raise ConfigError(f"{path} is not JSON", hint="the model is one JSON object") from None
        try:
            return cls.parse(data)
        except ConfigError as exc:
            raise ConfigError(f"{path}: {exc}", hint=exc.hint) from None

    @classmethod
    def parse(cls, data: object) -> Model:
        top = Node(data, "")
        top.obj()
        model = cls(
            tuple(trust_anchor(node) for node in top.get("trustAnchors").items()),
            tuple(profile(node) for node in top.get("profiles").items()),
            tuple(role(node) for node in top.get("roles").items()),
            tuple(crl(node) for node in top.get("crls").items()),
        )
        for name, arns in (
            ("trustAnchors", [a.arn for a in model.trust_anchors]),
            ("profiles", [p.arn for p in model.profiles]),
            ("roles", [r.arn for r in model.roles]),
        ):
            if len(set(arns)) != len(arns):
                raise top.get(name).fail("names an ARN twice")
        return model

    def with_crls(self, revocations: Revocations) -> Model:
        """The model with ``--crl``'s CRLs added: they apply whatever the trust anchor."""
        added = tuple(Crl(None, True, one) for one in revocations.crls)
        return replace(self, crls=self.crls + added)

    def revocations(self, trust_anchor_arn: str) -> Revocations:
        """The enabled CRLs that apply to a chain that reached ``trust_anchor_arn``."""
        return Revocations(
            tuple(
                c.crl
                for c in self.crls
                if c.enabled and c.trust_anchor_arn in (None, trust_anchor_arn)
            )
        )

    def anchors(self) -> TrustAnchors:
        """Every CA of every trust anchor: what a chain must reach before the ARN is looked at."""
        return TrustAnchors(tuple(c for a in self.trust_anchors for c in a.certificates))

    def trust_anchor(self, arn: str) -> TrustAnchor | None:
        return next((a for a in self.trust_anchors if a.arn in (arn, "*")), None)

    def profile(self, arn: str) -> Profile | None:
        return next((p for p in self.profiles if p.arn == arn), None)

    def role(self, arn: str) -> Role | None:
        return next((r for r in self.roles if r.arn == arn), None)


class Node:
    """A value of the model file and its path in it, read with one-line errors."""

    def __init__(self, value: object, path: str) -> None:
        self.value, self.path = value, path

    def fail(self, problem: str) -> ConfigError:
        return ConfigError(f"{self.path or 'the model'} {problem}", hint="see docs/emulator.md")

    def obj(self) -> dict[str, Any]:
        if not isinstance(self.value, dict):
            raise self.fail("must be a JSON object")
        return self.value

    def get(self, key: str, default: object = None) -> Node:
        value = self.obj().get(key, default)
        return Node(value, f"{self.path}.{key}" if self.path else key)

    def unwrap(self, key: str) -> Node:
        """``{"profile": {...}}`` (an ``aws`` command's answer) or the object itself."""
        inner = self.obj().get(key)
        return Node(inner, f"{self.path}.{key}") if isinstance(inner, dict) else self

    def items(self) -> list[Node]:
        value = [] if self.value is None else self.value
        if not isinstance(value, list):
            raise self.fail("must be a list")
        return [Node(item, f"{self.path}[{i}]") for i, item in enumerate(value)]

    def text(self) -> str:
        if not isinstance(self.value, str) or not self.value:
            raise self.fail("must be a non-empty string")
        return self.value

    def flag(self) -> bool:
        if not isinstance(self.value, bool):
            raise self.fail("must be true or false")
        return self.value

    def number(self, low: int, high: int) -> int:
        value = self.value
        if not isinstance(value, int) or isinstance(value, bool) or not low <= value <= high:
            raise self.fail(f"must be an integer from {low} to {high}")
        return value


def trust_anchor(node: Node) -> TrustAnchor:
    node = node.unwrap("trustAnchor")
    source = node.get("source")
    kind = source.get("sourceType", "CERTIFICATE_BUNDLE")
    if kind.value != "CERTIFICATE_BUNDLE":
        raise kind.fail("must be CERTIFICATE_BUNDLE offline (paste the CA's certificate)")
    data = source.get("sourceData").get("x509CertificateData")
    try:
        certs = tuple(x509.load_pem_x509_certificates(data.text().encode()))
    except ValueError:
        raise data.fail("holds no PEM certificate") from None
    if not all(is_ca(cert) for cert in certs):
        raise data.fail("must hold CA certificates only")
    return TrustAnchor(arn(node.get("trustAnchorArn"), ":trust-anchor/"), enabled(node), certs)


def profile(node: Node) -> Profile:
    node = node.unwrap("profile")
    roles = tuple(arn(item, ":role/") for item in node.get("roleArns").items())
    if not roles:
        raise node.get("roleArns").fail("must list at least one role ARN")
    mappings = node.get("attributeMappings")
    mapping = tuple(attribute_mapping(item) for item in mappings.items())
    return Profile(
        arn(node.get("profileArn"), ":profile/"),
        enabled(node),
        roles,
        node.get("durationSeconds", DEFAULT_DURATION).number(900, 43200),
        node.get("acceptRoleSessionName", False).flag(),
        node.get("requireInstanceProperties", False).flag(),
        mapping if mappings.value is not None else DEFAULT_MAPPING,
        mappings.value is None,
    )


def attribute_mapping(node: Node) -> tuple[str, tuple[str, ...]]:
    field = node.get("certificateField")
    if field.text() not in FIELDS:
        raise field.fail(f"must be one of {', '.join(sorted(FIELDS))}")
    rules = tuple(rule.get("specifier").text() for rule in node.get("mappingRules").items())
    return field.text(), rules


def role(node: Node) -> Role:
    node = node.unwrap("Role")
    document = node.get("AssumeRolePolicyDocument")
    if isinstance(document.value, str):  # IAM's API gives it URL-encoded; the CLI decoded
        try:
            document = Node(load_json(unquote(document.value)), document.path)
        except ValueError:
            raise document.fail("is not a JSON policy document") from None
    try:
        statements = parse_policy(document.obj())
    except ValueError as exc:
        raise ConfigError(f"{document.path}{exc}", hint="see docs/emulator.md") from None
    max_duration = node.get("MaxSessionDuration", DEFAULT_DURATION).number(3600, 43200)
    return Role(arn(node.get("Arn"), ":role/"), max_duration, statements)


def crl(node: Node) -> Crl:
    node = node.unwrap("crl")
    data = node.get("crlData")
    text = data.text()
    try:
        pem = PEM_CRL.decode() in text
        (parsed,) = parse_crls(text.encode() if pem else base64.b64decode(text, validate=True), "")
    except (ConfigError, ValueError):  # binascii.Error is a ValueError; so is a second CRL
        raise data.fail("must be one PEM CRL or a base64 DER CRL") from None
    return Crl(arn(node.get("trustAnchorArn"), ":trust-anchor/"), enabled(node), parsed)


def arn(node: Node, kind: str) -> str:
    text = node.text()
    if not text.startswith("arn:") or kind not in text:
        raise node.fail(f"must be an ARN with {kind.strip(':/')}/ID")
    return text


def enabled(node: Node) -> bool:
    return node.get("enabled", True).flag()


def load_model(
    config: str | None, trust_anchors: list[str] | None, crls: list[str] | None = None
) -> Model:
    """``--config FILE`` or the short form ``--trust-anchor CA.pem`` (not both), and the CRLs
    of ``--crl FILE`` (each applies whatever the trust anchor)."""
    return load_anchors(config, trust_anchors).with_crls(Revocations.load(crls or []))


def load_anchors(config: str | None, trust_anchors: list[str] | None) -> Model:
    if config and trust_anchors:
        raise ConfigError(
            "--config and --trust-anchor both given",
            hint="put the CA in the model's trustAnchors, or drop --config",
        )
    if config:
        return Model.load(config)
    if not trust_anchors:
        raise ConfigError("no trust anchor", hint="give --config FILE or --trust-anchor CA.pem")
    return Model.short_form(TrustAnchors.load(trust_anchors))


__all__ = ["DEFAULT_MAPPING", "Crl", "Model", "Profile", "Role", "TrustAnchor", "load_model"]
