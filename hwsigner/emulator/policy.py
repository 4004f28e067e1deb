"""A role's trust policy, evaluated as IAM does for the AssumeRole that Roles Anywhere makes.

    >>> statements = parse_policy({"Statement": [{"Effect": "Allow",
    ...     "Principal": {"Service": "rolesanywhere.amazonaws.com"}, "Action": "sts:AssumeRole",
    ...     "Condition": {"StringLike": {"aws:PrincipalTag/x509Subject/OU": "Dev*"}}}]})
    >>> evaluate(statements, {"aws:principaltag/x509subject/ou": ("Devices",)}, ["sts:AssumeRole"])
    ''

``evaluate`` answers '' when every action is allowed, else why not. IAM's rules: an explicit
Deny wins, else an Allow whose principal, action and every condition match, else denied
(https://docs.aws.amazon.com/IAM/latest/UserGuide/reference_policies_evaluation-logic.html).
Condition keys are case-insensitive; a missing key fails a condition, except for negated
operators, ``...IfExists``, ``Null`` and ``ForAllValues:``; ``ArnEquals`` and ``ArnLike`` both
match each ARN part with ``*`` and ``?`` wildcards. Policy variables are not expanded.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from .params import SessionRequest

# "you must create a trust relationship with the IAM Roles Anywhere service principal
# rolesanywhere.amazonaws.com" (https://docs.aws.amazon.com/rolesanywhere/latest/userguide/
# trust-model.html)
SERVICE_PRINCIPAL = "rolesanywhere.amazonaws.com"

STRING = {"StringEquals", "StringLike", "StringEqualsIgnoreCase", "ArnEquals", "ArnLike"}
NEGATED = {"StringNotEquals", "StringNotLike", "StringNotEqualsIgnoreCase", "ArnNotEquals"}
NEGATED |= {"ArnNotLike"}
OPERATORS = STRING | NEGATED | {"Null", "Bool"}
Context = Mapping[str, Sequence[str]]  # lower-case key -> values


@dataclass(frozen=True, slots=True)
class Condition:
    operator: str  # e.g. ForAnyValue:StringLikeIfExists
    key: str
    values: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class Statement:
    sid: str
    allow: bool
    for_roles_anywhere: bool  # the principal covers the Roles Anywhere service
    actions: tuple[str, ...]
    conditions: tuple[Condition, ...]


def policy_context(
    session: SessionRequest, tags: Sequence[tuple[str, str]], identity: str
) -> dict[str, list[str]]:
    """The keys Roles Anywhere's AssumeRole carries: the mapped attributes as principal (and
    request) tags, ``aws:SourceArn`` the trust anchor (docs: attribute-mapping-and-trust-
    policy.html), ``sts:SourceIdentity`` the subject's CN (trust-model.html)."""
    context: dict[str, list[str]] = {"aws:sourcearn": [session.trust_anchor_arn]}
    for key, value in tags:
        context[f"aws:principaltag/{key}".lower()] = [value]
        context[f"aws:requesttag/{key}".lower()] = [value]
    if tags:
        context["aws:tagkeys"] = [key for key, _ in tags]
    if identity:
        context["sts:sourceidentity"] = [identity]
    if session.role_session_name:
        context["sts:rolesessionname"] = [session.role_session_name]
    return context


def parse_policy(document: Mapping[str, Any]) -> tuple[Statement, ...]:
    """The statements; ``ValueError(".Statement[i]... problem")`` for what IAM would refuse."""
    raw = document.get("Statement")
    items = raw if isinstance(raw, list) else [raw]
    if raw is None or not all(isinstance(item, dict) for item in items):
        raise ValueError(".Statement must be a statement object or a list of them")
    return tuple(statement(item, f".Statement[{i}]") for i, item in enumerate(items))


def statement(item: Mapping[str, Any], path: str) -> Statement:
    for unsupported in ("NotPrincipal", "NotAction"):
        if unsupported in item:
            raise ValueError(f"{path}.{unsupported} is not supported by the emulator")
    effect = item.get("Effect")
    if effect not in ("Allow", "Deny"):
        raise ValueError(f"{path}.Effect must be Allow or Deny")
    actions = strings(item.get("Action"), f"{path}.Action")
    conditions = item.get("Condition", {})
    if not isinstance(conditions, dict):
        raise ValueError(f"{path}.Condition must be an object")
    return Statement(
        str(item.get("Sid", "")),
        effect == "Allow",
        principal_matches(item.get("Principal"), f"{path}.Principal"),
        actions,
        tuple(parsed_conditions(conditions, f"{path}.Condition")),
    )


def principal_matches(principal: object, path: str) -> bool:
    if principal == "*":
        return True
    if not isinstance(principal, dict):
        raise ValueError(f'{path} must be "*" or an object such as {{"Service": ...}}')
    services = strings(principal.get("Service", []), f"{path}.Service", empty=True)
    aws = strings(principal.get("AWS", []), f"{path}.AWS", empty=True)
    return SERVICE_PRINCIPAL in services or "*" in aws


def parsed_conditions(conditions: Mapping[str, Any], path: str) -> list[Condition]:
    found = []
    for operator, block in conditions.items():
        base = operator.split(":", 1)[-1].removesuffix("IfExists")
        prefix = operator[: -len(operator.split(":", 1)[-1])]
        if base not in OPERATORS or prefix not in ("", "ForAnyValue:", "ForAllValues:"):
            raise ValueError(f"{path}.{operator} is not an operator the emulator knows")
        if not isinstance(block, dict):
            raise ValueError(f"{path}.{operator} must be an object of condition keys")
        for key, values in block.items():
            found.append(Condition(operator, key, strings(values, f"{path}.{operator}.{key}")))
    return found


def strings(value: object, path: str, *, empty: bool = False) -> tuple[str, ...]:
    items: list[object] = value if isinstance(value, list) else [value]
    if not all(isinstance(item, (str, bool)) for item in items) or (not items and not empty):
        raise ValueError(f"{path} must be a string or a list of strings")
    return tuple(str(item).lower() if isinstance(item, bool) else str(item) for item in items)


def evaluate(statements: Sequence[Statement], context: Context, actions: Sequence[str]) -> str:
    """'' when the trust policy allows every action in ``context``; else the reason."""
    for action in actions:
        applies = [s for s in statements if s.for_roles_anywhere and action_matches(s, action)]
        denied = next((s for s in applies if not s.allow and failed(s, context) == ""), None)
        if denied is not None:
            return f"{action} is denied explicitly by statement {label(statements, denied)}"
        allows = [s for s in applies if s.allow]
        if not any(failed(s, context) == "" for s in allows):
            if not allows:
                return f"no statement allows {SERVICE_PRINCIPAL} to {action}"
            why = "; ".join(f"{label(statements, s)}: {failed(s, context)}" for s in allows)
            return f"no statement allows {action}: {why}"
    return ""


def label(statements: Sequence[Statement], item: Statement) -> str:
    return item.sid or f"Statement[{statements.index(item)}]"


def action_matches(item: Statement, action: str) -> bool:
    return any(like(pattern.lower(), action.lower()) for pattern in item.actions)


def failed(item: Statement, context: Context) -> str:
    """'' when every condition holds, else the first that does not."""
    for condition in item.conditions:
        if not holds(condition, context.get(condition.key.lower())):
            present = context.get(condition.key.lower())
            shown = list(present) if present else "absent"
            return (
                f"{condition.operator} {condition.key} {list(condition.values)} is false "
                f"(the request has {shown})"
            )
    return ""


def holds(condition: Condition, present: Sequence[str] | None) -> bool:
    operator = condition.operator
    base = operator.split(":", 1)[-1].removesuffix("IfExists")
    if base == "Null":  # "true": the key must be absent
        return (condition.values[0] == "true") == (not present)
    if not present:
        if operator.endswith("IfExists") or operator.startswith("ForAllValues:"):
            return True
        return base in NEGATED and not operator.startswith("ForAnyValue:")
    matches = [value_matches(base, value, condition.values) for value in present]
    if operator.startswith("ForAllValues:"):
        return all(matches)
    if operator.startswith("ForAnyValue:"):
        return any(matches)
    return all(matches) if base in NEGATED else any(matches)


def value_matches(base: str, value: str, wanted: Sequence[str]) -> bool:
    """Whether one context value satisfies the operator against the policy's values."""
    positive = base.replace("Not", "")
    if positive in ("Bool", "StringEqualsIgnoreCase"):
        hit = any(value.lower() == item.lower() for item in wanted)
    elif positive == "StringEquals":
        hit = value in wanted
    elif positive == "StringLike":
        hit = any(like(item, value) for item in wanted)
    else:  # ArnEquals, ArnLike: part by part, with wildcards
        hit = any(arn_like(item, value) for item in wanted)
    return not hit if base in NEGATED else hit


def like(pattern: str, value: str) -> bool:
    """``*`` any run of characters, ``?`` any one; case-sensitive."""
    regex = "".join(".*" if c == "*" else "." if c == "?" else re.escape(c) for c in pattern)
    return re.fullmatch(regex, value, re.DOTALL) is not None


def arn_like(pattern: str, value: str) -> bool:
    wanted, got = pattern.split(":", 5), value.split(":", 5)
    return len(wanted) == len(got) == 6 and all(map(like, wanted, got))


__all__ = [
    "SERVICE_PRINCIPAL",
    "Condition",
    "Statement",
    "evaluate",
    "parse_policy",
    "policy_context",
]
