"""RFC 7512 PKCS#11 URIs: what the parser accepts, what it refuses, and what format() writes."""

from __future__ import annotations

import pytest

from hwsigner.errors import ConfigError
from hwsigner.keys.pkcs11.uri import Pkcs11Uri


def test_path_and_query_attributes() -> None:
    uri = Pkcs11Uri.parse(
        "pkcs11:library-manufacturer=SoftHSM%20project;library-description=Implementation;"
        "library-version=2.6;slot-manufacturer=SM;slot-description=Slot%201;slot-id=42;"
        "manufacturer=Yubico%20%28www.yubico.com%29;model=YubiKey%20YK5;serial=123;"
        "token=YubiKey%20PIV%20%2312345;id=%01%02;object=X.509%20Certificate%20for%20PIV;"
        "type=cert?module-name=ykcs11&module-path=/usr/lib/libykcs11.so"
    )
    assert uri.library_manufacturer == "SoftHSM project"
    assert uri.library_version_tuple == (2, 6)
    assert uri.slot_description == "Slot 1"
    assert uri.slot_id == 42
    assert uri.manufacturer == "Yubico (www.yubico.com)"
    assert uri.token == "YubiKey PIV #12345"
    assert uri.id == b"\x01\x02"
    assert uri.object == "X.509 Certificate for PIV"
    assert uri.type == "cert"
    assert uri.module_name == "ykcs11"
    assert uri.module_path == "/usr/lib/libykcs11.so"


def test_plus_is_a_literal_plus_and_raw_spaces_are_kept() -> None:
    uri = Pkcs11Uri.parse("pkcs11:token=a+b;object=my key")
    assert uri.token == "a+b"
    assert uri.object == "my key"


def test_id_is_bytes_and_text_is_utf8() -> None:
    assert Pkcs11Uri.parse("pkcs11:id=%00%ff").id == b"\x00\xff"
    assert Pkcs11Uri.parse("pkcs11:id=ab").id == b"ab"
    assert Pkcs11Uri.parse("pkcs11:object=caf%C3%A9").object == "café"


def test_library_version_without_minor_is_minor_zero() -> None:
    assert Pkcs11Uri.parse("pkcs11:library-version=3").library_version_tuple == (3, 0)


def test_empty_uri_and_trailing_separator() -> None:
    assert Pkcs11Uri.parse("pkcs11:") == Pkcs11Uri()
    assert Pkcs11Uri.parse("pkcs11:token=dev;").token == "dev"


def test_vendor_attributes_are_tolerated() -> None:
    uri = Pkcs11Uri.parse("pkcs11:token=dev;x-vendor=1?x-flag=yes")
    assert uri.vendor == (("x-vendor", "1"), ("x-flag", "yes"))


@pytest.mark.parametrize(
    ("text", "needle"),
    [
        ("token=dev", "not a pkcs11: URI"),
        ("pkcs11:token=%zz", "invalid percent-encoding"),
        ("pkcs11:token=abc%4", "invalid percent-encoding"),
        ("pkcs11:token=a;token=b", "'token' is given twice"),
        ("pkcs11:token=a?module-name=x&module-name=y", "'module-name' is given twice"),
        ("pkcs11:token=dev?pin-value=1234&pin-source=file:/pin", "pin-value or pin-source"),
        ("pkcs11:slot-id=abc", "slot-id must be a decimal number"),
        ("pkcs11:slot-id=-1", "slot-id must be a decimal number"),
        ("pkcs11:type=privkey", "unknown PKCS#11 URI object type 'privkey'"),
        ("pkcs11:color=blue", "unknown PKCS#11 URI attribute 'color'"),
        ("pkcs11:token=dev?pin=1", "unknown PKCS#11 URI attribute 'pin'"),
        ("pkcs11:token", "has no value"),
        ("pkcs11:library-version=v2", "library-version must look like"),
        ("pkcs11:object=%ff", "is not UTF-8"),
    ],
)
def test_mistakes_are_clear_errors(text: str, needle: str) -> None:
    with pytest.raises(ConfigError) as caught:
        Pkcs11Uri.parse(text)
    assert needle in str(caught.value)


def test_errors_never_repeat_a_pin() -> None:
    for text in ("pkcs11:token=dev?pin-value=98%zz76", "pin-value=9876?pkcs11:"):
        with pytest.raises(ConfigError) as caught:
            Pkcs11Uri.parse(text)
        assert "98" not in str(caught.value) and "76" not in str(caught.value)


def test_format_encodes_id_fully_and_round_trips() -> None:
    uri = Pkcs11Uri(token="My Token+1", id=b"AB\x01", object="a;b=c", type="cert")
    text = uri.format()
    assert text == "pkcs11:token=My%20Token%2B1;id=%41%42%01;object=a%3Bb%3Dc;type=cert"
    assert Pkcs11Uri.parse(text) == uri


def test_format_leaves_out_the_pin_unless_asked() -> None:
    uri = Pkcs11Uri.parse("pkcs11:token=dev?pin-value=1234&module-path=/usr/lib/x.so")
    assert "1234" not in uri.format()
    assert "1234" not in repr(uri)
    assert "1234" not in str(uri)
    assert uri.format(with_pin=True) == "pkcs11:token=dev?pin-value=1234&module-path=/usr/lib/x.so"
    assert Pkcs11Uri.parse(uri.format(with_pin=True)) == uri


def test_query_keeps_paths_and_commands_readable() -> None:
    uri = Pkcs11Uri(token="dev", pin_source="|/usr/bin/get-pin --token dev")
    assert uri.format() == "pkcs11:token=dev?pin-source=|/usr/bin/get-pin%20--token%20dev"
    assert Pkcs11Uri.parse(uri.format()) == uri
