"""PKCS#11 URIs (RFC 7512): parsed once into a value, formatted back for output.

    >>> from hwsigner.keys.pkcs11.uri import Pkcs11Uri
    >>> uri = Pkcs11Uri.parse("pkcs11:token=dev;id=%01;object=ra?pin-source=file:/run/pin")
    >>> uri.token, uri.id, uri.object, uri.pin_source
    ('dev', b'\\x01', 'ra', 'file:/run/pin')
    >>> Pkcs11Uri(token="My Token", id=b"\\x01\\xab", type="cert").format()
    'pkcs11:token=My%20Token;id=%01%AB;type=cert'

Values are percent-decoded; ``+`` is a literal plus (RFC 7512 is not form encoding). ``id`` is
bytes, every other attribute text. Vendor attributes (``x-...``) are kept but not interpreted.
A ``pin-value`` never appears in ``repr`` or in ``format()`` unless asked for.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from ...errors import ConfigError

SCHEME = "pkcs11:"

# RFC 7512 section 2.3: path attributes, in the order format() writes them.
PATH_ATTRIBUTES = (
    "library-manufacturer",
    "library-description",
    "library-version",
    "slot-manufacturer",
    "slot-description",
    "slot-id",
    "manufacturer",
    "model",
    "serial",
    "token",
    "id",
    "object",
    "type",
)
QUERY_ATTRIBUTES = ("pin-value", "pin-source", "module-name", "module-path")
TOKEN_ATTRIBUTES = (
    "token",
    "manufacturer",
    "model",
    "serial",
    "slot_id",
    "slot_description",
    "slot_manufacturer",
)
TYPES = ("cert", "private", "public", "secret-key", "data")

# What needs no percent-encoding: RFC 3986 unreserved plus most of RFC 7512's pk11-res-avail.
# "+", "=", "&" are encoded anyway so that no other URI parser can misread them.
_PATH_SAFE = frozenset(
    b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-._~:@!$'()*,"
)
_QUERY_SAFE = _PATH_SAFE | frozenset(b"/|")
_HEX = frozenset("0123456789abcdefABCDEF")

HINT = "see RFC 7512, e.g. pkcs11:token=dev;object=ra?pin-source=file:/run/pin"


@dataclass(frozen=True, slots=True)
class Pkcs11Uri:
    """A parsed ``pkcs11:`` URI. Unset attributes are None; ``vendor`` holds ``x-`` ones."""

    library_manufacturer: str | None = None
    library_description: str | None = None
    library_version: str | None = None
    slot_manufacturer: str | None = None
    slot_description: str | None = None
    slot_id: int | None = None
    manufacturer: str | None = None
    model: str | None = None
    serial: str | None = None
    token: str | None = None
    id: bytes | None = None
    object: str | None = None
    type: str | None = None
    pin_value: str | None = field(default=None, repr=False)
    pin_source: str | None = None
    module_name: str | None = None
    module_path: str | None = None
    vendor: tuple[tuple[str, str], ...] = ()

    @classmethod
    def parse(cls, text: str) -> Pkcs11Uri:
        """Parse ``text``; every mistake is a ``ConfigError`` that does not repeat a PIN."""
        if not text.startswith(SCHEME):
            raise ConfigError(f"not a pkcs11: URI: {_redact(text)}", hint=HINT)
        path, _, query = text[len(SCHEME) :].partition("?")
        values: dict[str, object] = {}
        vendor: list[tuple[str, str]] = []
        for part, separator, known in (
            (path, ";", PATH_ATTRIBUTES),
            (query, "&", QUERY_ATTRIBUTES),
        ):
            for item in part.split(separator):
                if not item:
                    continue  # tolerate "pkcs11:" and a trailing separator
                name, equals, raw = item.partition("=")
                if not equals or not name:
                    raise ConfigError(
                        f"PKCS#11 URI attribute {_redact(name or item)!r} has no value", hint=HINT
                    )
                if name in values or any(name == seen for seen, _ in vendor):
                    raise ConfigError(
                        f"PKCS#11 URI attribute {_redact(name)!r} is given twice", hint=HINT
                    )
                if name.startswith("x-"):
                    vendor.append((name, _text(name, raw)))
                elif name in known:
                    values[name] = _value(name, raw)
                else:
                    raise ConfigError(f"unknown PKCS#11 URI attribute {_redact(name)!r}", hint=HINT)
        if "pin-value" in values and "pin-source" in values:
            raise ConfigError(
                "a PKCS#11 URI may give pin-value or pin-source, not both",
                hint="keep one of them",
            )
        kwargs = {name.replace("-", "_"): value for name, value in values.items()}
        return cls(**kwargs, vendor=tuple(vendor))  # type: ignore[arg-type]

    def format(self, *, with_pin: bool = False) -> str:
        """The URI as text, ``id`` fully percent-encoded; ``pin-value`` only when asked."""
        path = [
            f"{name}={_encode(value, _PATH_SAFE, everything=name == 'id')}"
            for name, value in self._items(PATH_ATTRIBUTES)
        ]
        path += [f"{name}={_encode(value, _PATH_SAFE)}" for name, value in self.vendor]
        query = [
            f"{name}={_encode(value, _QUERY_SAFE)}"
            for name, value in self._items(QUERY_ATTRIBUTES)
            if with_pin or name != "pin-value"
        ]
        return SCHEME + ";".join(path) + ("?" + "&".join(query) if query else "")

    def __str__(self) -> str:
        return self.format()

    @property
    def selects_object(self) -> bool:
        """True when the URI names an object by ``id`` or ``object`` (label)."""
        return self.id is not None or self.object is not None

    @property
    def selects_token(self) -> bool:
        """True when the URI names a token or slot (not only a module or an object)."""
        return any(getattr(self, name) is not None for name in TOKEN_ATTRIBUTES)

    def or_else(self, other: Pkcs11Uri | None, *names: str) -> Pkcs11Uri:
        """This URI when it sets one of ``names`` (or there is no other), else ``other``: the
        key's URI decides the PIN and the module, the certificate's when the key's says nothing.
        """
        if other is None or any(getattr(self, name) is not None for name in names):
            return self
        return other

    @property
    def library_version_tuple(self) -> tuple[int, int] | None:
        """``library-version`` as (major, minor); "M" means M.0 (RFC 7512 section 2.3)."""
        if self.library_version is None:
            return None
        major, _, minor = self.library_version.partition(".")
        return int(major), int(minor or 0)

    def _items(self, names: tuple[str, ...]) -> list[tuple[str, bytes | str]]:
        items = []
        for name in names:
            value = getattr(self, name.replace("-", "_"))
            if value is not None:
                items.append((name, str(value) if isinstance(value, int) else value))
        return items


def _value(name: str, raw: str) -> object:
    if name == "id":
        return _decode(name, raw)
    value = _text(name, raw)
    if name == "slot-id":
        if not value.isdigit():
            raise ConfigError(
                f"PKCS#11 URI slot-id must be a decimal number, not {_redact(value)!r}", hint=HINT
            )
        return int(value)
    if name == "type" and value not in TYPES:
        raise ConfigError(
            f"unknown PKCS#11 URI object type {_redact(value)!r}",
            hint=f"use one of {', '.join(TYPES)}",
        )
    if name == "library-version" and not _is_version(value):
        raise ConfigError(
            f"PKCS#11 URI library-version must look like 2 or 2.6, not {_redact(value)!r}",
            hint=HINT,
        )
    return value


def _is_version(value: str) -> bool:
    major, dot, minor = value.partition(".")
    return major.isdigit() and (minor.isdigit() if dot else True)


def _text(name: str, raw: str) -> str:
    try:
        return _decode(name, raw).decode("utf-8")
    except UnicodeDecodeError:
        raise ConfigError(
            f"PKCS#11 URI attribute {name!r} is not UTF-8 text after percent-decoding",
            hint=HINT,
        ) from None


def _decode(name: str, raw: str) -> bytes:
    """Percent-decode; ``+`` stays a plus. A bad escape is an error, not kept as is."""
    out = bytearray()
    i = 0
    while i < len(raw):
        char = raw[i]
        if char == "%":
            pair = raw[i + 1 : i + 3]
            if len(pair) != 2 or not set(pair) <= _HEX:
                shown = "" if name == "pin-value" else f" ({raw[i : i + 3]!r})"
                raise ConfigError(
                    f"PKCS#11 URI attribute {name!r} has an invalid percent-encoding{shown}",
                    hint="write a literal % as %25",
                )
            out.append(int(pair, 16))
            i += 3
        else:
            out += char.encode("utf-8")
            i += 1
    return bytes(out)


def _encode(value: bytes | str, safe: frozenset[int], *, everything: bool = False) -> str:
    data = value.encode("utf-8") if isinstance(value, str) else value
    return "".join(
        chr(byte) if byte in safe and not everything else f"%{byte:02X}" for byte in data
    )


def _redact(text: str) -> str:
    """``text`` with any pin-value hidden, for error messages."""
    return re.sub(r"pin-value=[^&;?]*", "pin-value=***", text)


__all__ = ["Pkcs11Uri"]
