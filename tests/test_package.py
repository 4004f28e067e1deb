"""The package's promises: one error root, a pinned public API, light imports."""

from __future__ import annotations

import importlib
import inspect
import pkgutil
import subprocess
import sys

import hwsigner
from hwsigner.errors import HwSignerError

HEAVY = ("pkcs11", "tpm2_pytss", "cryptography", "boto3", "botocore")


def all_modules() -> list[str]:
    names = []
    for info in pkgutil.walk_packages(hwsigner.__path__, "hwsigner."):
        if info.name.endswith("__main__"):
            continue
        try:
            importlib.import_module(info.name)
        except ModuleNotFoundError as exc:  # an optional extra that is not installed
            if exc.name not in HEAVY:
                raise
            continue
        names.append(info.name)
    return names


def test_every_exception_descends_from_the_root() -> None:
    found = []
    for name in all_modules():
        for _, obj in inspect.getmembers(sys.modules[name], inspect.isclass):
            if issubclass(obj, BaseException) and obj.__module__.startswith("hwsigner"):
                found.append(obj)
                assert issubclass(obj, HwSignerError), obj
    assert HwSignerError in found and len(found) >= 7


def test_public_api_is_sorted_complete_and_importable() -> None:
    assert hwsigner.__all__ == sorted(hwsigner.__all__)
    for name in hwsigner.__all__:
        assert getattr(hwsigner, name) is not None
    public = {n for n in dir(hwsigner) if not n.startswith("_")}
    modules = {n for n in public if inspect.ismodule(getattr(hwsigner, n))}
    assert public - modules == set(hwsigner.__all__)


def imported_by(code: str) -> set[str]:
    out = subprocess.run(
        [sys.executable, "-c", f"{code}\nimport sys; print(' '.join(sys.modules))"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    return {name.split(".")[0] for name in out.split()}


def test_import_hwsigner_is_light() -> None:
    assert not imported_by("import hwsigner") & set(HEAVY)


def test_cli_start_up_imports_only_what_the_command_needs() -> None:
    code = (
        "import sys\nfrom hwsigner.cli import main\n"
        "sys.argv = ['hwsigner', 'version']\n"
        "import contextlib, io\n"
        "with contextlib.redirect_stdout(io.StringIO()): main(['version'])"
    )
    assert not imported_by(code) & set(HEAVY)


def test_a_missing_extra_is_one_line_naming_it(tmp_path) -> None:
    # Uninstalling a library in the middle of a test run would break the other tests: instead the
    # child process blocks its import (None in sys.modules), which Python reports exactly as an
    # absent package.
    tss2 = tmp_path / "k.tss2"
    tss2.write_text("-----BEGIN TSS2 PRIVATE KEY-----\nAA==\n-----END TSS2 PRIVATE KEY-----\n")
    arns = (
        "'--trust-anchor-arn', 'arn:aws:rolesanywhere:us-east-1:111122223333:trust-anchor/a', "
        "'--profile-arn', 'arn:aws:rolesanywhere:us-east-1:111122223333:profile/b', "
        "'--role-arn', 'arn:aws:iam::111122223333:role/r'"
    )
    for library, extra, key in (
        ("pkcs11", "pkcs11", "pkcs11:token=dev;object=ra"),
        ("tpm2_pytss", "tpm", str(tss2)),
    ):
        code = (
            f"import sys\nsys.modules[{library!r}] = None\nfrom hwsigner.cli import main\n"
            f"sys.exit(main(['credential-process', '--private-key', {key!r}, {arns}]))"
        )
        result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
        assert result.returncode == 1 and result.stdout == ""
        assert result.stderr.splitlines() == [
            f"hwsigner: the Python module {library!r} (hwsigner[{extra}]) is not installed; "
            f"pip install 'hwsigner[{extra}]'"
        ]
