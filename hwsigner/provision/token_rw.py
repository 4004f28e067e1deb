"""A logged-in read-write session with the one token a URI names, for writing objects to it.

    >>> from hwsigner.keys.pkcs11_uri import Pkcs11Uri
    >>> from hwsigner.provision.token_rw import WritableToken
    >>> uri = Pkcs11Uri.parse("pkcs11:token=dev;object=device?pin-source=file:/run/pin")
    >>> with WritableToken.open(uri, pkcs11_lib=None) as token:       # doctest: +SKIP
    ...     token.objects_labelled("device")
    []

Signing goes through ``hwsigner.keys.pkcs11``, whose shared sessions are read-only; making keys
and storing certificates need a read-write session of their own. The module, the token and the
PIN are found exactly as for signing (``pkcs11_module``, ``pkcs11_pin``); a refused PIN is
reported once and not retried.
"""

from __future__ import annotations

import contextlib
import os
from dataclasses import dataclass, replace
from types import TracebackType
from typing import Any

import pkcs11
from pkcs11 import Attribute, ObjectClass
from pkcs11 import exceptions as p11
from pkcs11.constants import TokenFlag

from ..errors import ConfigError, KeySourceError, PasswordError
from ..keys.pkcs11_find import token_uri
from ..keys.pkcs11_module import Module, describe_token, failure, matching_tokens
from ..keys.pkcs11_pin import ask_pin, pin_without_asking
from ..keys.pkcs11_select import selects_token
from ..keys.pkcs11_uri import Pkcs11Uri

PIN_ERRORS = (p11.PinIncorrect, p11.PinInvalid, p11.PinLenRange, p11.PinExpired, p11.PinLocked)
KINDS = {
    ObjectClass.PRIVATE_KEY: "private key",
    ObjectClass.PUBLIC_KEY: "public key",
    ObjectClass.CERTIFICATE: "certificate",
    ObjectClass.SECRET_KEY: "secret key",
    ObjectClass.DATA: "data object",
}


@dataclass
class WritableToken:
    """An open read-write session, logged in as the user. ``close`` logs out."""

    module: Module
    token: Any
    session: Any

    @property
    def name(self) -> str:
        return describe_token(self.token)

    @property
    def uri(self) -> Pkcs11Uri:
        """A URI that names this token by its label, manufacturer, model and serial."""
        return token_uri(self.token)

    @classmethod
    def open(cls, uri: Pkcs11Uri, pkcs11_lib: str | None) -> WritableToken:
        module = Module.load(Module.path_for(uri, pkcs11_lib))
        tokens = matching_tokens(module, uri)
        if len(tokens) > 1:
            names = ", ".join(describe_token(token) for token in tokens)
            raise ConfigError(
                f"{len(tokens)} tokens match {uri}: {names}",
                hint="add token= or serial= to the URI",
            )
        token = tokens[0]
        if token.flags & TokenFlag.WRITE_PROTECTED:
            raise KeySourceError(
                f"token {describe_token(token)} is write-protected",
                hint="use a token that can store new objects",
            )
        pin = pin_without_asking(uri, os.environ)
        if pin is None and not token.flags & TokenFlag.PROTECTED_AUTHENTICATION_PATH:
            pin = ask_pin(f"PIN for token {token.label.strip()!r}")
        try:
            session = token.open(rw=True, user_pin=pkcs11.PROTECTED_AUTH if pin is None else pin)
        except PIN_ERRORS as exc:
            raise PasswordError(
                f"the token {describe_token(token)} refused the PIN ({type(exc).__name__})",
                hint="not retried automatically, to keep the token from locking; "
                "check the PIN source",
            ) from None
        except p11.PKCS11Error as exc:
            raise failure(
                exc, f"opening a read-write session with {describe_token(token)}"
            ) from exc
        return cls(module, token, session)

    def reference(self, uri: Pkcs11Uri, id_: bytes, label: str) -> str:
        """``uri`` naming the object ``id_``/``label``: without a PIN value (a pin-source stays),
        without a type (so it names the key and its certificate), with the token's label when
        ``uri`` named no token."""
        named = replace(uri, id=id_ or None, object=label or None, type=None)
        if not selects_token(uri):
            named = replace(named, token=self.uri.token)
        return named.format()

    def objects_labelled(self, label: str) -> list[str]:
        """What kinds of object carry ``label`` (e.g. ``["private key", "certificate"]``)."""
        return self._kinds({Attribute.LABEL: label})

    def objects_with_id(self, id_: bytes) -> list[str]:
        return self._kinds({Attribute.ID: id_})

    def _kinds(self, search: dict[Attribute, Any]) -> list[str]:
        return [self._kind(obj) for obj in self.find(search)]

    @staticmethod
    def _kind(obj: Any) -> str:
        try:
            return KINDS.get(obj[Attribute.CLASS], "object")
        except p11.PKCS11Error:
            return "object"

    def find(self, search: dict[Attribute, Any]) -> list[Any]:
        try:
            return list(self.session.get_objects(search))
        except p11.PKCS11Error as exc:
            raise failure(exc, f"searching token {self.name}") from exc

    def used_ids(self) -> set[bytes]:
        ids = set()
        for obj in self.find({}):
            try:
                ids.add(bytes(obj[Attribute.ID]))
            except p11.PKCS11Error:
                continue
        return ids

    def free_id(self) -> bytes:
        """The lowest one-byte CKA_ID no object uses (YubiKey PIV: 1-4 are slots 9a-9e)."""
        used = self.used_ids()
        for number in range(1, 256):
            if bytes([number]) not in used:
                return bytes([number])
        raise KeySourceError(
            f"every one-byte CKA_ID is taken on token {self.name}", hint="pass id= in the URI"
        )

    def mechanisms(self) -> frozenset[int]:
        try:
            return frozenset(int(m) for m in self.token.slot.get_mechanisms())
        except p11.PKCS11Error as exc:
            raise failure(exc, f"listing the mechanisms of token {self.name}") from exc

    def close(self) -> None:
        with contextlib.suppress(p11.PKCS11Error):  # the session is gone either way
            self.session.close()

    def __enter__(self) -> WritableToken:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()
