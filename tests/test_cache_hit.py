"""The argparse-free cache-hit path reads flags and entries exactly as the full path does.

``hwsigner.cli.cache_hit`` answers ``credential-process --cache`` before argparse is loaded; it
must find the same entry the full path would, and step aside whenever argparse might read the
command line differently. ``hwsigner.delivery.cache`` reads entries in ``put``'s layout without
json; it must give the same answer as json does, and decline everything else.
"""

from __future__ import annotations

import json
from datetime import datetime, timezone
from pathlib import Path

import pytest

from hwsigner.cli.cache_hit import cache_inputs, read_flags
from hwsigner.cli.parser import apply_sources, build_parser
from hwsigner.credentials import Credentials
from hwsigner.delivery.cache import CredentialCache
from hwsigner.delivery.cache_entry import entry_answer, plain_process_expiration

from .helpers import ARN_FLAGS, PROFILE_ARN, ROLE_ARN, TRUST_ANCHOR_ARN

ENV = {"AWS_USE_FIPS_ENDPOINT": "true", "HOME": "/nowhere"}
KEY = ["--certificate", "leaf.pem", "--private-key", "leaf.key", "--cache"]


def argparse_values(args: list[str]) -> dict[str, object]:
    """What the full path holds once ``main`` has settled the flags (no HWSIGNER_* here)."""
    argv = ["credential-process", *args]
    parsed = build_parser(argv).parse_args(argv)
    apply_sources(parsed, {})
    return vars(parsed)


@pytest.mark.parametrize(
    "args",
    [
        [*ARN_FLAGS, *KEY],
        [*KEY, *ARN_FLAGS, "--intermediates", "ca.pem", "--cache-dir", "/tmp/c"],
        [f"--trust-anchor-arn={TRUST_ANCHOR_ARN}", f"--profile-arn={PROFILE_ARN}",
         f"--role-arn={ROLE_ARN}", "--certificate=leaf.pem", "--cache"],
        [*ARN_FLAGS, *KEY, "--role-arn", "arn:aws:iam::111122223333:role/last-wins"],
        [*ARN_FLAGS, *KEY, "--session-duration", "900", "--role-session-name", "s"],
        [*ARN_FLAGS, *KEY, "--session-duration=+1_800", "--region", ""],
        [*ARN_FLAGS, "--cache", "--certificate",
         "pkcs11:token=t;object=o?pin-value=1234&module-path=/m.so", "--pkcs11-lib", "/x.so"],
        [*ARN_FLAGS, *KEY, "--no-verify-ssl", "--with-proxy", "--reuse-pin",
         "--no-tpm-key-password", "--tpm-tcti", "swtpm:port=2321", "--endpoint", "http://e"],
        [*ARN_FLAGS, *KEY, "--tpm-key-password", "pw", "--pkcs8-password=-starts-with-dash"],
    ],
)  # fmt: skip
def test_flags_are_read_as_argparse_reads_them(args: list[str]) -> None:
    fast = read_flags(args)
    assert fast is not None
    full = argparse_values(args)
    assert cache_inputs(fast, ENV) == cache_inputs(full, ENV)
    assert {name: fast[name] for name in fast} == {name: full[name] for name in fast}


def test_every_setting_is_one_flag_read_alike_by_argparse_and_the_cache_hit_reader() -> None:
    from hwsigner.settings import FIELDS, Settings

    args = ["--cache"]
    for row in FIELDS:
        value = "900" if row.name == "session_duration" else f"value-of-{row.name}"
        value = "k=v" if row.repeat else value
        args += [row.flag] if row.switch else [row.flag, value]
    fast, full = read_flags(args), argparse_values(args)
    assert fast is not None
    argv = ["credential-process", *args]
    parsed = build_parser(argv).parse_args(argv)
    apply_sources(parsed, {})
    from_argparse = Settings.from_args(parsed)
    assert from_argparse == Settings(**{row.name: fast[row.name] for row in FIELDS})
    assert all(fast[row.name] == full[row.name] != row.default for row in FIELDS)
    secrets = {row.name for row in FIELDS if row.cache == ""}
    assert secrets >= {"pkcs8_password", "tpm_key_password"}
    assert not secrets & set(cache_inputs(fast, ENV)[0])


def test_a_pin_in_a_uri_is_not_part_of_the_key() -> None:
    uri = "pkcs11:token=t;object=o?pin-value=1234&module-path=/m.so"
    fields, files = cache_inputs({"certificate": uri}, {})
    assert fields["certificate"] == "pkcs11:token=t;object=o?&module-path=/m.so"
    assert files == []


@pytest.mark.parametrize(
    "args",
    [
        [*ARN_FLAGS, *KEY, "-h"],
        [*ARN_FLAGS, *KEY, "--help"],
        [*ARN_FLAGS, *KEY, "--debug"],  # the full path explains the hit
        [*ARN_FLAGS, "--cert", "leaf.pem", "--cache"],  # argparse takes abbreviations
        [*ARN_FLAGS, *KEY, "--no-such-flag"],
        [*ARN_FLAGS, *KEY, "positional"],
        [*ARN_FLAGS, *KEY, "--", "--region", "x"],
        ARN_FLAGS[:4] + KEY,  # no --role-arn: argparse reports it
        [*ARN_FLAGS, *KEY, "--session-duration", "an hour"],
        [*ARN_FLAGS, *KEY, "--cache=yes"],
        [*ARN_FLAGS, *KEY, "--region"],
        [*ARN_FLAGS, *KEY, "--region", "--cache"],
        [*ARN_FLAGS, *KEY, "--session-duration", "-900"],
    ],
)
def test_anything_unsure_is_left_to_argparse(args: list[str]) -> None:
    assert read_flags(args) is None


def credentials(secret: str, token: str) -> Credentials:
    expiration = datetime(2030, 1, 1, tzinfo=timezone.utc)
    return Credentials("ASIAEXAMPLE", secret, token, expiration)


@pytest.mark.parametrize(
    ("secret", "token", "plain"),
    [
        ("wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY", "IQoJb3JpZ2luX2VjE=", True),
        ("with a space, and: colons", "tok", True),
        ('with "quotes"', "tok", False),
        ("back\\slash", "tok", False),
        ("ünïcode", "tok", False),
        ("tab\there", "tok", False),
    ],
)
def test_entries_read_without_json_agree_with_json(
    tmp_path: Path, secret: str, token: str, plain: bool
) -> None:
    cache = CredentialCache(tmp_path)
    given = credentials(secret, token)
    cache.put("k", given)
    text = cache.entry_path("k").read_text()
    answer, expiration, _ = entry_answer(text, "k")
    assert answer == given.to_process_json()
    assert json.loads(answer) == json.loads(text)["credentials"]
    assert expiration == "2030-01-01T00:00:00Z"
    assert (plain_process_expiration(answer) is not None) == plain
    assert cache.get("k", now=0) == answer


@pytest.mark.parametrize(
    "text",
    [
        '{"Version":1,"AccessKeyId":"A","SecretAccessKey":"S","SessionToken":"T"}',
        '{"Version":1,"AccessKeyId":"A","SecretAccessKey":"S","SessionToken":"T",'
        '"Expiration":"2030-01-01T00:00:00Z","Extra":"x"}',
        '{"Version":1,"SecretAccessKey":"S","AccessKeyId":"A","SessionToken":"T",'
        '"Expiration":"2030-01-01T00:00:00Z"}',
        '{"Version":1,"AccessKeyId":"A","AccessKeyId":"A","SessionToken":"T",'
        '"Expiration":"2030-01-01T00:00:00Z"}',
        '{"Version":1,"AccessKeyId":"","SecretAccessKey":"S","SessionToken":"T",'
        '"Expiration":"2030-01-01T00:00:00Z"}',
        '{"Version":1,"AccessKeyId":"A","SecretAccessKey":"S","SessionToken":"T",'
        '"Expiration":"2030-01-01 00:00:00"}',
        '{"Version":2,"AccessKeyId":"A","SecretAccessKey":"S","SessionToken":"T",'
        '"Expiration":"2030-01-01T00:00:00Z"}',
    ],
)
def test_other_layouts_are_not_read_as_plain(text: str) -> None:
    assert plain_process_expiration(text) is None


def test_an_entry_for_another_key_is_refused_on_both_paths(tmp_path: Path) -> None:
    cache = CredentialCache(tmp_path)
    cache.put("k", credentials("s", "t"))
    text = cache.entry_path("k").read_text()
    with pytest.raises(ValueError, match="another key"):
        entry_answer(text, "other")
    spaced = json.dumps(json.loads(text))  # not put's layout: read through json
    with pytest.raises(ValueError, match="another key"):
        entry_answer(spaced, "other")
    assert entry_answer(spaced, "k") == entry_answer(text, "k")
