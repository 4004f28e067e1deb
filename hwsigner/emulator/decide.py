"""CreateSession decided as IAM Roles Anywhere decides, after the signature and leaf checks.

    >>> import tempfile
    >>> from datetime import datetime, timezone
    >>> from urllib.parse import urlencode
    >>> from hwsigner.devpki import DevPki, new_key
    >>> from hwsigner.emulator.params import session_request
    >>> pki, now = DevPki.create(tempfile.mkdtemp()), datetime.now(timezone.utc)
    >>> ra = "arn:aws:rolesanywhere:us-east-1:111122223333:"
    >>> role = "arn:aws:iam::111122223333:role/device"
    >>> policy = {"Statement": [{"Effect": "Allow", "Action": ["sts:AssumeRole",
    ...     "sts:TagSession", "sts:SetSourceIdentity"], "Principal": {"Service":
    ...     "rolesanywhere.amazonaws.com"}, "Condition": {"StringEquals":
    ...     {"aws:PrincipalTag/x509Subject/CN": "device-0001"}}}]}   # a trust policy
    >>> model = Model.parse({"trustAnchors": [{"trustAnchorArn": ra + "trust-anchor/t",
    ...     "source": {"sourceData": {"x509CertificateData": pki.root_cert.read_text()}}}],
    ...     "profiles": [{"profileArn": ra + "profile/p", "roleArns": [role]}],
    ...     "roles": [{"Arn": role, "AssumeRolePolicyDocument": policy}]})
    >>> session = session_request("/sessions?" + urlencode({"trustAnchorArn": ra +
    ...     "trust-anchor/t", "profileArn": ra + "profile/p", "roleArn": role}), b"{}", "us-east-1")
    >>> for name in ("device-0001", "device-0002"):
    ...     leaf = pki.issue(new_key("ec-p256").public_key(), name)
    ...     decision = decide(model, leaf, (pki.issuing[0],), session, now)
    ...     print(name, decision.allowed, decision.duration, decision.refusal)
    device-0001 True 3600 None
    device-0002 False 0 AccessDeniedException: Not authorized to perform sts:AssumeRole

In the service's order, the first broken rule is the answer: the chain reaches the named trust
anchor, which exists and is enabled; no certificate of the chain is revoked by a CRL of that
trust anchor or of ``--crl`` (``crl.Revocations``); the profile exists, is enabled and lists the
role; a ``roleSessionName`` only if the profile accepts one; instance properties if the profile
requires them; the duration is the least of the request's, the profile's and the role's
``MaxSessionDuration``; the role's trust policy allows ``sts:AssumeRole`` (and
``sts:TagSession``, ``sts:SetSourceIdentity``) in the context Roles Anywhere sets. Each refusal
carries the service's status, type and message; the precise reason is ``refusal.reason``.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime

from cryptography import x509
from cryptography.x509.oid import NameOID

from .certs import TrustAnchors, check_leaf
from .model import DEFAULT_MAPPING, Model, Profile
from .params import Rejection, SessionRequest, access_denied, bad_request, untrusted
from .policy import evaluate, policy_context
from .verify import Received, decode_certificate

# The RDNs Roles Anywhere maps from Subject and Issuer ("/C, /O, /OU, /ST, /L, and /CN",
# https://docs.aws.amazon.com/rolesanywhere/latest/userguide/workload-identities.html).
RDNS = {
    "C": NameOID.COUNTRY_NAME,
    "O": NameOID.ORGANIZATION_NAME,
    "OU": NameOID.ORGANIZATIONAL_UNIT_NAME,
    "ST": NameOID.STATE_OR_PROVINCE_NAME,
    "L": NameOID.LOCALITY_NAME,
    "CN": NameOID.COMMON_NAME,
}
# STS session tags: at most 50, keys up to 128 and values up to 256 characters of this pattern
# (https://docs.aws.amazon.com/STS/latest/APIReference/API_Tag.html).
MAX_TAGS, MAX_KEY, MAX_VALUE = 50, 128, 256
TAG_VALUE = re.compile(r"[\w .:/=+\-@]*")
NOT_AUTHORIZED = "Not authorized to perform sts:AssumeRole"  # the emulator's wording
Tags = tuple[tuple[str, str], ...]


@dataclass(frozen=True, slots=True)
class Decision:
    session: SessionRequest
    tags: Tags  # x509Subject/CN -> value, as the profile maps them
    source_identity: str
    duration: int  # granted: the least of the request's, the profile's and the role's
    refusal: Rejection | None = None

    @property
    def allowed(self) -> bool:
        return self.refusal is None

    def record(self, cert: x509.Certificate) -> dict[str, object]:
        """The entry of ``GET /_emulator/sessions`` for this decision."""
        return {
            "serialNumber": str(cert.serial_number),
            "subject": cert.subject.rfc4514_string(),
            "roleArn": self.session.role_arn,
            "principalTags": dict(self.tags),
            "sourceIdentity": self.source_identity,
            "roleSessionName": self.session.role_session_name or format(cert.serial_number, "x"),
            "durationSeconds": self.duration if self.allowed else None,
            "instanceProperties": dict(self.session.instance_properties),
            "decision": "allowed" if self.allowed else "refused",
            "reason": self.refusal.reason if self.refusal else "",
        }


def decide(
    model: Model,
    leaf: x509.Certificate,
    chain: tuple[x509.Certificate, ...],
    session: SessionRequest,
    now: datetime,
) -> Decision:
    profile = None if model.short else model.profile(session.profile_arn)
    tags = principal_tags(leaf, profile)
    identity = source_identity(leaf)
    duration = session.duration
    try:
        check_trust_anchor(model, leaf, chain, session, now)
        if not model.short:
            duration = check_profile_and_role(model, profile, session, tags, identity)
    except Rejection as refusal:
        return Decision(session, tags, identity, 0, refusal)
    return Decision(session, tags, identity, duration)


def check_offline(
    model: Model,
    leaf: x509.Certificate,
    chain: tuple[x509.Certificate, ...],
    session: SessionRequest,
    now: datetime,
) -> Decision:
    """``hwsigner emulator check``: the leaf rules, then ``decide``; no signature involved."""
    try:
        check_leaf(leaf, now)
    except Rejection as refusal:
        return Decision(session, principal_tags(leaf, None), source_identity(leaf), 0, refusal)
    return decide(model, leaf, chain, session, now)


def check_trust_anchor(
    model: Model,
    leaf: x509.Certificate,
    chain: tuple[x509.Certificate, ...],
    session: SessionRequest,
    now: datetime,
) -> None:
    arn = session.trust_anchor_arn
    anchor = model.trust_anchor(arn)
    if anchor is None:
        raise untrusted(f"the model has no trust anchor {arn}")
    if not anchor.enabled:
        raise untrusted(f"the trust anchor {arn} is disabled")
    try:
        TrustAnchors(anchor.certificates).verify_chain(leaf, chain, now)
    except Rejection as rejection:
        raise untrusted(f"no chain to the trust anchor {arn}: {rejection.reason}") from None
    model.revocations(arn).check(leaf, chain, anchor.certificates)


def check_profile_and_role(
    model: Model, profile: Profile | None, session: SessionRequest, tags: Tags, identity: str
) -> int:
    arn, role_arn = session.profile_arn, session.role_arn
    if profile is None:
        raise access_denied(NOT_AUTHORIZED, f"the model has no profile {arn}")
    if not profile.enabled:
        raise access_denied(NOT_AUTHORIZED, f"the profile {arn} is disabled")
    if role_arn not in profile.role_arns:
        raise access_denied(NOT_AUTHORIZED, f"the profile {arn} does not list {role_arn}")
    if session.role_session_name and not profile.accept_role_session_name:
        raise access_denied(
            "Not authorized to set roleSessionName.",
            f"the profile {arn} has acceptRoleSessionName false",
        )
    if profile.require_instance_properties and not session.instance_properties:
        raise bad_request(
            "Instance properties are required by the profile"
        )  # the emulator's wording
    role = model.role(role_arn)
    if role is None:
        raise access_denied(NOT_AUTHORIZED, f"the model has no role {role_arn}")
    context = policy_context(session, tags, identity)
    actions = ["sts:AssumeRole"] + ["sts:TagSession"] * bool(tags)
    actions += ["sts:SetSourceIdentity"] * bool(identity)
    why = evaluate(role.statements, context, actions)
    if why:
        raise access_denied(NOT_AUTHORIZED, f"the trust policy of {role_arn}: {why}")
    return min(session.duration, profile.duration, role.max_duration)


def principal_tags(cert: x509.Certificate, profile: Profile | None) -> Tags:
    """The session tags the profile's attribute mapping (or the default one) makes."""
    mapping = profile.mapping if profile else DEFAULT_MAPPING
    tags: dict[str, str] = {}
    for field, specifiers in mapping:
        for specifier in specifiers:
            tags.update(field_values(cert, field, specifier))
    kept = [
        (key, value)
        for key, value in tags.items()
        if len(key) <= MAX_KEY and len(value) <= MAX_VALUE and TAG_VALUE.fullmatch(value)
    ]
    return tuple(kept[:MAX_TAGS])


def field_values(cert: x509.Certificate, field: str, specifier: str) -> dict[str, str]:
    if field == "x509SAN":
        return san_values(cert, specifier)
    return rdn_values(cert.subject if field == "x509Subject" else cert.issuer, field, specifier)


def rdn_values(name: x509.Name, prefix: str, specifier: str) -> dict[str, str]:
    """``*``: every supported RDN; else the one named; the first value of each."""
    wanted = RDNS if specifier in ("*", "") else {specifier: RDNS[specifier]}
    if specifier not in RDNS and specifier not in ("*", ""):
        return {}
    found = {}
    for short, oid in wanted.items():
        values = name.get_attributes_for_oid(oid)
        if values:
            found[f"{prefix}/{short}"] = str(values[0].value)
    return found


def san_values(cert: x509.Certificate, specifier: str) -> dict[str, str]:
    """``DNS``, ``URI``: the first of that type; ``Name/*`` (or ``Name``, ``Name/``, or one RDN
    as ``Name/CN``): the RDNs of the first directory name."""
    try:
        san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    except (x509.ExtensionNotFound, x509.DuplicateExtension, ValueError):
        return {}
    kinds: dict[str, type[x509.DNSName] | type[x509.UniformResourceIdentifier]] = {
        "DNS": x509.DNSName,
        "URI": x509.UniformResourceIdentifier,
    }
    if specifier in kinds:
        values = san.get_values_for_type(kinds[specifier])
        return {f"x509SAN/{specifier}": values[0]} if values else {}
    if specifier == "Name" or specifier.startswith("Name/"):
        names = san.get_values_for_type(x509.DirectoryName)
        rdn = specifier.partition("/")[2]
        return rdn_values(names[0], "x509SAN/Name", rdn) if names else {}
    return {}


def refused_record(received: Received, rejection: Rejection) -> dict[str, object]:
    """The sessions entry of a request refused before a decision: its certificate, if readable."""
    serial = subject = None
    try:
        leaf = decode_certificate(received.single("x-amz-x509", "X-Amz-X509") or "", "")
        serial, subject = str(leaf.serial_number), leaf.subject.rfc4514_string()
    except Rejection:
        pass
    empty: dict[str, str] = {}
    return {
        "serialNumber": serial,
        "subject": subject,
        "roleArn": None,
        "principalTags": empty,
        "sourceIdentity": None,
        "roleSessionName": None,
        "durationSeconds": None,
        "instanceProperties": empty,
        "decision": "refused",
        "reason": rejection.reason,
    }


def source_identity(cert: x509.Certificate) -> str:
    """ "Sessions issued by IAM Roles Anywhere have the source identity set to the common
    name(s) (CN) of the subject(s)" (trust-model.html); the emulator answers ``CN=<name>``."""
    names = cert.subject.get_attributes_for_oid(NameOID.COMMON_NAME)
    return f"CN={names[0].value!s}" if names else ""


__all__ = ["Decision", "check_offline", "decide", "principal_tags", "refused_record"]
