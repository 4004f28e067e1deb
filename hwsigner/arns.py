"""ARNs of Roles Anywhere resources, and the endpoint a region's CreateSession goes to.

>>> parse_arn("arn:aws:rolesanywhere:us-east-2:111122223333:trust-anchor/abc",
...           "trust-anchor").region
'us-east-2'
>>> endpoint_url("cn-north-1")
'https://rolesanywhere.cn-north-1.amazonaws.com.cn'
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass

from .errors import ConfigError

_ARN = re.compile(
    r"arn:(?P<partition>aws[a-z-]*):(?P<service>[a-z0-9-]+):(?P<region>[a-z0-9-]*):"
    r"(?P<account>\d{12}):(?P<resource>.+)"
)
REGION_NAME = re.compile(r"[a-z]{2}(-[a-z]+)+-\d+")

# What each flag's ARN must look like: its service and resource type.
KINDS = {
    "trust-anchor": ("rolesanywhere", "trust-anchor/"),
    "profile": ("rolesanywhere", "profile/"),
    "role": ("iam", "role/"),
}


@dataclass(frozen=True, slots=True)
class Arn:
    partition: str
    service: str
    region: str
    account: str
    resource: str


def parse_arn(text: str, kind: str) -> Arn:
    """Parse an ARN that must be of ``kind`` (trust-anchor, profile or role)."""
    service, prefix = KINDS[kind]
    flag = f"--{kind}-arn"
    match = _ARN.fullmatch(text.strip())
    if not match:
        raise ConfigError(
            f"{flag} is not an ARN: {text!r}",
            hint=f"expected arn:aws:{service}:{'REGION' if service != 'iam' else ''}:"
            f"ACCOUNT:{prefix}ID",
        )
    arn = Arn(**match.groupdict())
    wrong_region = bool(arn.region) == (service == "iam")
    if arn.service != service or not arn.resource.startswith(prefix) or wrong_region:
        raise ConfigError(
            f"{flag} is not a {kind} ARN: {text!r}",
            hint=f"expected arn:{arn.partition}:{service}:"
            f"{'REGION' if service != 'iam' else ''}:ACCOUNT:{prefix}ID",
        )
    if arn.region and not REGION_NAME.fullmatch(arn.region):
        raise ConfigError(f"{flag} names an unknown region {arn.region!r}", hint="check the ARN")
    return arn


def signing_region(trust_anchor: Arn, profile: Arn, region: str | None) -> str:
    """``--region`` if given, else the trust anchor's; trust anchor and profile must agree."""
    if trust_anchor.region != profile.region:
        raise ConfigError(
            f"the trust anchor is in {trust_anchor.region} but the profile is in {profile.region}",
            hint="use a trust anchor and a profile of the same region",
        )
    if region is not None and not REGION_NAME.fullmatch(region):
        raise ConfigError(f"--region {region!r} is not a region name", hint="e.g. us-east-1")
    return region or trust_anchor.region


def endpoint_url(region: str, env: Mapping[str, str] | None = None) -> str:
    """The CreateSession endpoint: partition DNS suffix, FIPS and dual-stack variants."""
    env = env or {}
    fips = env.get("AWS_USE_FIPS_ENDPOINT", "").lower() == "true"
    dualstack = env.get("AWS_USE_DUALSTACK_ENDPOINT", "").lower() == "true"
    china = region.startswith("cn-")
    if dualstack:
        suffix = "api.amazonwebservices.com.cn" if china else "api.aws"
    else:
        suffix = "amazonaws.com.cn" if china else "amazonaws.com"
    name = "rolesanywhere-fips" if fips else "rolesanywhere"
    return f"https://{name}.{region}.{suffix}"


__all__ = ["REGION_NAME", "Arn", "endpoint_url", "parse_arn", "signing_region"]
