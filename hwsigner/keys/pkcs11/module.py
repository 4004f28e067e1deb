"""PKCS#11 modules and the tokens a URI selects in them.

    >>> from hwsigner.keys.pkcs11.module import Module, one_token
    >>> from hwsigner.keys.pkcs11.uri import Pkcs11Uri
    >>> uri = Pkcs11Uri.parse("pkcs11:token=dev;object=ra")
    >>> module = Module.load(Module.path_for(uri, pkcs11_lib=None))   # doctest: +SKIP
    >>> token = one_token(module, uri)                                # doctest: +SKIP

The module is ``--pkcs11-lib``, else the URI's ``module-path`` / ``module-name``, else
``p11-kit-proxy.so`` (which loads every module p11-kit is configured with). Token and slot
attributes are compared with the blank padding of PKCS#11's fixed-width fields stripped.
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import pkcs11
from pkcs11 import exceptions as p11
from pkcs11.constants import TokenFlag

from ...errors import ConfigError, KeySourceError
from .uri import Pkcs11Uri

log = logging.getLogger("hwsigner")

DEFAULT_MODULE = "p11-kit-proxy.so"
LIBRARY_DIRS = (
    "/usr/lib/x86_64-linux-gnu",
    "/usr/lib/aarch64-linux-gnu",
    "/usr/lib/arm-linux-gnueabihf",
    "/usr/lib64",
    "/usr/lib",
    "/usr/local/lib",
    "/opt/homebrew/lib",
)
MODULE_SUBDIRS = ("", "pkcs11", "softhsm", "p11-kit")


def failure(exc: p11.PKCS11Error, doing: str) -> KeySourceError:
    """A library error as ours: what we were doing, and the PKCS#11 error's name."""
    detail = str(exc).strip()
    name = type(exc).__name__
    return KeySourceError(
        f"PKCS#11 error while {doing}: {name}{': ' + detail if detail else ''}",
        hint="run with --debug for details; check the token is present and the module works",
    )


@dataclass(frozen=True, slots=True)
class Module:
    """A loaded PKCS#11 module (python-pkcs11's ``lib``), loaded once per path per process."""

    path: str
    lib: Any

    @staticmethod
    def path_for(uri: Pkcs11Uri, pkcs11_lib: str | None) -> str:
        """``--pkcs11-lib``, else the URI's module-path / module-name, else p11-kit-proxy."""
        if pkcs11_lib:
            return pkcs11_lib
        if uri.module_path:
            path = Path(uri.module_path)
            if path.is_dir() and uri.module_name:
                return find_library(uri.module_name, (str(path),)) or str(path / uri.module_name)
            return uri.module_path
        if uri.module_name:
            found = find_library(uri.module_name)
            if found is None:
                raise KeySourceError(
                    f"PKCS#11 module {uri.module_name!r} not found in {', '.join(LIBRARY_DIRS)}",
                    hint="give its path with module-path= in the URI or --pkcs11-lib",
                )
            return found
        found = find_library(DEFAULT_MODULE)
        if found is None:
            raise KeySourceError(
                f"no PKCS#11 module given and {DEFAULT_MODULE} not found in "
                f"{', '.join(LIBRARY_DIRS)}",
                hint="pass --pkcs11-lib (e.g. /usr/lib/softhsm/libsofthsm2.so) "
                "or install p11-kit-modules",
            )
        return found

    @classmethod
    def load(cls, path: str) -> Module:
        if not Path(path).is_file():
            raise KeySourceError(
                f"PKCS#11 module not found: {path}", hint="check --pkcs11-lib or module-path"
            )
        try:
            lib = pkcs11.lib(path)
        except p11.PKCS11Error as exc:
            reason = str(exc).strip() or type(exc).__name__
            raise KeySourceError(
                f"cannot load the PKCS#11 module {path}: {reason}",
                hint="check that it is a PKCS#11 module for this machine's architecture",
            ) from exc
        return cls(path, lib)


def find_library(name: str, dirs: tuple[str, ...] = LIBRARY_DIRS) -> str | None:
    """``name`` (``softhsm2``, ``libsofthsm2.so``, ...) in the usual library directories."""
    stems = [name] if "." in name else [f"{name}.so", f"lib{name}.so", f"{name}.dylib"]
    for directory in dirs:
        for sub in MODULE_SUBDIRS:
            for stem in stems:
                candidate = os.path.join(directory, sub, stem)
                if os.path.isfile(candidate):
                    return candidate
    return None


def token_matches(uri: Pkcs11Uri, token: Any) -> bool:
    """Compare the URI's slot and token attributes, blank padding stripped on both sides."""
    slot = token.slot
    wanted: list[tuple[str | int | None, str | int]] = [
        (uri.slot_id, slot.slot_id),
        (uri.slot_description, slot.slot_description),
        (uri.slot_manufacturer, slot.manufacturer_id),
        (uri.token, token.label),
        (uri.manufacturer, token.manufacturer_id),
        (uri.model, token.model),
        (uri.serial, token.serial.decode("utf-8", "replace")),
    ]
    for want, have in wanted:
        if want is None:
            continue
        if isinstance(want, int) or isinstance(have, int):
            if want != have:
                return False
        elif want.strip() != have.strip():
            return False
    return True


def library_matches(uri: Pkcs11Uri, lib: Any) -> bool:
    if uri.library_manufacturer is not None and (
        uri.library_manufacturer.strip() != lib.manufacturer_id.strip()
    ):
        return False
    if uri.library_description is not None and (
        uri.library_description.strip() != lib.library_description.strip()
    ):
        return False
    version = uri.library_version_tuple
    return version is None or version == tuple(lib.library_version)


def present_tokens(module: Module) -> list[Any]:
    """Initialized tokens in the module's slots (uninitialized SoftHSM slots are skipped)."""
    tokens = []
    try:
        slots = module.lib.get_slots(token_present=True)
    except p11.PKCS11Error as exc:
        raise failure(exc, f"listing the slots of {module.path}") from exc
    for slot in slots:
        try:
            token = slot.get_token()
        except (p11.TokenNotPresent, p11.TokenNotRecognised):
            continue
        except p11.PKCS11Error as exc:
            log.debug("slot %s: %s", slot.slot_id, type(exc).__name__)
            continue
        if token.flags & TokenFlag.TOKEN_INITIALIZED:
            tokens.append(token)
    return tokens


def matching_tokens(module: Module, uri: Pkcs11Uri) -> list[Any]:
    """The tokens the URI selects; none is an error that lists the tokens there are."""
    tokens = present_tokens(module)
    if library_matches(uri, module.lib):
        matched = [token for token in tokens if token_matches(uri, token)]
        if matched:
            return matched
    if not tokens:
        raise KeySourceError(
            f"no PKCS#11 token found through {module.path}",
            hint="plug the device in, or check the module (and SOFTHSM2_CONF for SoftHSM)",
        )
    names = ", ".join(describe_token(token) for token in tokens)
    raise KeySourceError(
        f"no PKCS#11 token matches {uri}", hint=f"tokens through {module.path}: {names}"
    )


def open_session(token: Any, rw: bool) -> Any:
    """A session with ``token``, not logged in."""
    try:
        return token.open(rw=rw)
    except p11.PKCS11Error as exc:
        raise failure(exc, f"opening a session with token {describe_token(token)}") from exc


def token_again(module: Module, token: Any) -> Any:
    """``token`` found again after it went away (its slot may have changed)."""
    serial, label = bytes(token.serial), token.label
    again = [t for t in present_tokens(module) if (bytes(t.serial), t.label) == (serial, label)]
    if not again:
        raise KeySourceError(
            f"token {describe_token(token)} went away and did not come back",
            hint="plug the device in again",
        )
    return again[0]


def one_token(module: Module, uri: Pkcs11Uri) -> Any:
    """The one token a key URI selects: a PIN is asked for, and a key made on, one token only."""
    tokens = matching_tokens(module, uri)
    if len(tokens) > 1:
        raise ConfigError(
            f"{len(tokens)} tokens match {uri}: {', '.join(describe_token(t) for t in tokens)}",
            hint="add token= or serial= to the URI",
        )
    return tokens[0]


def describe_token(token: Any) -> str:
    return f"{token.label.strip()!r} (serial {token.serial.decode('utf-8', 'replace').strip()})"


def token_uri(token: Any) -> Pkcs11Uri:
    """A URI naming ``token`` by its fields (the label alone may not be unique)."""
    return Pkcs11Uri(
        manufacturer=token.manufacturer_id.strip() or None,
        model=token.model.strip() or None,
        serial=token.serial.decode("utf-8", "replace").strip() or None,
        token=token.label.strip(),
    )


def object_uri(token: Any, id_: bytes, label: str, kind: str) -> str:
    """The URI that selects exactly one object of ``token``, as text (no PIN in it)."""
    return replace(token_uri(token), id=id_ or None, object=label or None, type=kind).format()


__all__ = [
    "Module", "describe_token", "failure", "find_library", "library_matches", "matching_tokens",
    "object_uri", "one_token", "open_session", "present_tokens", "token_again", "token_matches",
    "token_uri",
]  # fmt: skip
