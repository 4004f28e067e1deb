"""One credential request's settings: a frozen value, and the one table every reader shares.

    >>> from hwsigner.settings import Settings
    >>> settings = Settings(
    ...     certificate="pkcs11:token=dev;object=ra",
    ...     trust_anchor_arn="arn:aws:rolesanywhere:us-east-1:111122223333:trust-anchor/ta",
    ...     profile_arn="arn:aws:rolesanywhere:us-east-1:111122223333:profile/pr",
    ...     role_arn="arn:aws:iam::111122223333:role/app",
    ...     pkcs8_password="secret",
    ... )
    >>> settings.session_duration, "secret" in repr(settings)
    (3600, False)

Each field of ``Settings`` is declared once, below, with its flag, help and metavar. From that
one declaration come the keywords of ``hwsigner.get_credentials`` and ``boto3_session``, the
flags of the credential commands (``hwsigner.cli.parser``), the cached ``credential-process``
parser and its cache key (``hwsigner.cli.cache_hit``), and ``from_args``: a new setting is one
line here. Sources other than flags read the same table: ``HWSIGNER_<FLAG>`` variables
(``hwsigner.cli.sources``) and a config file section keyed by the flag's name without ``--``.

A cached ``credential-process`` reads the table before anything else is loaded, so this module
imports nothing: not ``dataclasses`` (7 ms of start-up, more than the whole cache hit),
not ``typing``. ``value_class`` gives ``Settings`` what a frozen, slotted dataclass would, and
tells type checkers so (``typing.dataclass_transform``).
"""

from __future__ import annotations

TYPE_CHECKING = False  # typing.TYPE_CHECKING, without importing typing (start-up time)
if TYPE_CHECKING:
    from collections.abc import Mapping, Sequence
    from typing import Any, TypeVar, dataclass_transform

    from cryptography.x509 import Certificate

    from .keys import KeyBackend, KeyOptions
    from .keys.file import PrivateKey

    T = TypeVar("T")
    V = TypeVar("V", bound="Value")
else:

    def dataclass_transform(**_: object) -> object:
        return lambda function: function


_REQUIRED = object()  # the default of a setting that has none
ENV_PREFIX = "HWSIGNER_"  # + the name in upper case: the variable (hwsigner.cli.sources)


class Setting:
    """One row of the table: a field of ``Settings`` and the flag that sets it.

    ``cache`` says how the field enters ``credential-process --cache``'s key: ``"value"`` as it
    is, ``"reference"`` without its ``pin-value``, ``""`` not at all (PINs and passwords do not
    change the answer, and must not end up hashed in a file name); ``hashed`` adds the content
    of the file it names. ``repeat``: the flag may be given again and again (a tuple).
    ``variable``: the ``HWSIGNER_*`` environment variable that sets it ("" for none).
    """

    __slots__ = (
        "cache", "default", "flag", "group", "hashed", "help", "metavar", "name", "repeat",
        "secret", "variable",
    )  # fmt: skip

    def __init__(self, flag: str, help: str, **options: Any) -> None:
        self.name = flag[2:].replace("-", "_")
        self.flag = flag
        self.help = help
        self.default = options.get("default", _REQUIRED)
        self.metavar: str | None = options.get("metavar")
        self.group: str = options.get("group", "session")
        self.cache: str = options.get("cache", "")
        self.hashed: bool = options.get("hashed", False)
        self.secret: bool = options.get("secret", False)
        self.repeat: bool = options.get("repeat", False)
        self.variable: str = options.get("variable", ENV_PREFIX + self.name.upper())

    @property
    def required(self) -> bool:
        return self.default is _REQUIRED

    @property
    def switch(self) -> bool:
        """A flag without a value (``--reuse-pin``)."""
        return self.default is False

    def __repr__(self) -> str:
        return f"Setting({self.flag!r})"


def setting(flag: str, help: str, *, default: Any = _REQUIRED, **options: Any) -> Any:
    """A field of a ``value_class``: its flag, help and default (``options``: see ``Setting``)."""
    return Setting(flag, help, default=default, **options)


@dataclass_transform(frozen_default=True, kw_only_default=True, field_specifiers=(setting,))
def value_class(cls: type[T]) -> type[T]:
    """``cls`` as a frozen, slotted value whose fields are its ``setting`` attributes."""
    rows = tuple(value for value in vars(cls).values() if isinstance(value, Setting))
    namespace = {
        name: value
        for name, value in vars(cls).items()
        if not isinstance(value, Setting) and name not in ("__dict__", "__weakref__")
    }
    namespace["__slots__"] = tuple(row.name for row in rows)
    namespace["FIELDS"] = rows
    return type(cls.__name__, cls.__bases__, namespace)


class Value:
    """What a ``value_class`` shares: keyword construction, no assignment, equality, repr."""

    __slots__ = ()
    FIELDS: tuple[Setting, ...] = ()

    def __init__(self, **values: Any) -> None:
        unknown = set(values) - {row.name for row in self.FIELDS}
        if unknown:
            name = type(self).__name__
            raise TypeError(f"{name}() got an unexpected keyword argument {min(unknown)!r}")
        for row in self.FIELDS:
            value = values.get(row.name, row.default)
            if value is _REQUIRED:
                raise TypeError(f"{type(self).__name__}() missing keyword argument {row.name!r}")
            object.__setattr__(self, row.name, value)

    def __setattr__(self, name: str, value: object) -> None:
        raise AttributeError(f"{type(self).__name__} is frozen: use replace()")

    def __delattr__(self, name: str) -> None:
        raise AttributeError(f"{type(self).__name__} is frozen")

    def _values(self) -> tuple[object, ...]:
        return tuple(getattr(self, row.name) for row in self.FIELDS)

    def __eq__(self, other: object) -> bool:
        if type(other) is not type(self):
            return NotImplemented
        return self._values() == other._values()

    def __hash__(self) -> int:
        return hash(self._values())

    def __repr__(self) -> str:
        shown = (f"{r.name}={_shown(getattr(self, r.name))}" for r in self.FIELDS if not r.secret)
        return f"{type(self).__name__}({', '.join(shown)})"

    def replace(self: V, **changes: Any) -> V:
        """A copy with ``changes``."""
        values = {row.name: getattr(self, row.name) for row in self.FIELDS}
        return type(self)(**{**values, **changes})


def _shown(value: object) -> str:
    """A value for ``repr``: bytes and objects (a PEM key, a ``cryptography`` key) by type only."""
    if value is None or isinstance(value, str | int | tuple):
        return repr(value)
    return f"<{type(value).__name__.lstrip('_')}>"


@value_class
class Settings(Value):
    """Everything one CreateSession with one key needs; the field names are the flags'."""

    # in the order of ``credential-process --help``
    intermediates: str | bytes | Sequence[Certificate] | None = setting(
        "--intermediates", "intermediate CA certificates (PEM bundle)",
        default=None, metavar="PEM", cache="value", hashed=True,
    )  # fmt: skip
    trust_anchor_arn: str = setting(
        "--trust-anchor-arn", "trust anchor ARN", metavar="ARN", cache="value"
    )
    profile_arn: str = setting("--profile-arn", "profile ARN", metavar="ARN", cache="value")
    role_arn: str = setting("--role-arn", "role to assume", metavar="ARN", cache="value")
    session_duration: int = setting(
        "--session-duration", "session duration, 900 to 43200 (default 3600)",
        default=3600, metavar="SECONDS", cache="value",
    )  # fmt: skip
    role_session_name: str | None = setting(
        "--role-session-name", "role session name", default=None, metavar="NAME", cache="value"
    )
    region: str | None = setting(
        "--region", "signing region (default: the trust anchor's)", default=None, cache="value"
    )
    endpoint: str | None = setting(
        "--endpoint", "CreateSession endpoint (default: by region)",
        default=None, metavar="URL", cache="value",
    )  # fmt: skip
    no_verify_ssl: bool = setting(
        "--no-verify-ssl", "do not verify the endpoint's TLS", default=False, variable=""
    )
    instance_property: tuple[str, ...] | Mapping[str, str] = setting(
        "--instance-property", "KEY=VALUE sent as an instance property (repeatable, up to 50)",
        default=(), metavar="KEY=VALUE", cache="value", repeat=True,
    )  # fmt: skip
    certificate: str | bytes | Certificate | None = setting(
        "--certificate", "certificate: PEM/DER file, PKCS#12 file, or pkcs11: URI",
        default=None, metavar="CERT", group="certificate", cache="reference", hashed=True,
    )  # fmt: skip
    private_key: str | bytes | KeyBackend | PrivateKey | None = setting(
        "--private-key", "private key: key file, TSS2 PEM, pkcs11: URI, or handle:0x81...",
        default=None, metavar="KEY", group="key", cache="reference",
    )  # fmt: skip
    pkcs11_lib: str | None = setting(
        "--pkcs11-lib", "PKCS#11 module (default: p11-kit-proxy)",
        default=None, metavar="PATH", group="key", cache="value",
    )  # fmt: skip
    reuse_pin: bool = setting(
        "--reuse-pin", "use the user PIN for keys that need a login per signature",
        default=False, group="key",
    )  # fmt: skip
    tpm_key_password: str | None = setting(
        "--tpm-key-password", "password of the TPM key",
        default=None, metavar="PASSWORD", group="key", secret=True,
    )  # fmt: skip
    no_tpm_key_password: bool = setting(
        "--no-tpm-key-password", "the TPM key has no password", default=False, group="key"
    )
    tpm_tcti: str | None = setting(
        "--tpm-tcti", "TPM connection (default: $TPM2TOOLS_TCTI or device)",
        default=None, metavar="TCTI", group="key", cache="value",
    )  # fmt: skip
    pkcs8_password: str | None = setting(
        "--pkcs8-password", "password of an encrypted PKCS#8 key or PKCS#12 file",
        default=None, metavar="PASSWORD", group="key", secret=True,
    )  # fmt: skip

    @classmethod
    def from_args(cls, args: object) -> Settings:
        """The settings an ``argparse.Namespace`` (or any object with these attributes) holds."""
        values = {row.name: getattr(args, row.name) for row in FIELDS}
        for row in FIELDS:
            if row.repeat:
                values[row.name] = tuple(values[row.name] or ())
        return cls(**values)

    def key_options(self) -> KeyOptions:
        """What opening the key may need beyond its reference."""
        return key_options(self)


FIELDS: tuple[Setting, ...] = Settings.FIELDS


def key_options(values: object) -> KeyOptions:
    """The ``KeyOptions`` of ``Settings``, or of parsed flags (``csr``, ``import-cert`` ...)."""
    from .keys import KeyOptions

    def get(name: str) -> Any:
        return getattr(values, name, None)

    if get("tpm_key_password") is not None and get("no_tpm_key_password"):
        from .errors import ConfigError

        raise ConfigError("--tpm-key-password and --no-tpm-key-password contradict each other")
    return KeyOptions(
        pkcs11_lib=get("pkcs11_lib"),
        reuse_pin=bool(get("reuse_pin")),
        pkcs8_password=get("pkcs8_password"),
        tpm_key_password=get("tpm_key_password"),
        no_tpm_key_password=bool(get("no_tpm_key_password")),
        tpm_tcti=get("tpm_tcti"),
    )


__all__ = ["FIELDS", "Setting", "Settings", "key_options"]
