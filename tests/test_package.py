"""The package's promises: one error root, a pinned public API, a declared surface for every
module, small modules, light imports."""

from __future__ import annotations

import ast
import importlib
import inspect
import pkgutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import hwsigner
from hwsigner.cli.parser import COMMANDS
from hwsigner.errors import HwSignerError

from .test_import_cycles import graph

PACKAGE = Path(hwsigner.__file__).parent
ROOT = PACKAGE.parent
MAX_MODULE_LINES = 300
MAX_MODULES_PER_1000_LINES = 5.5
# Modules over the size that another branch shrinks; the lead deletes each entry when its branch
# merges (the test fails once an entry is stale, so none outlives its fix).
OVERSIZED: dict[str, str] = {}

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


def is_public(name: str) -> bool:
    """``hwsigner.a.b`` is public unless a part of its name starts with ``_``."""
    return not any(part.startswith("_") for part in name.split(".")[1:])


def test_every_public_module_declares_its_surface() -> None:
    for name in all_modules():
        module = sys.modules[name]
        if not is_public(name):
            continue
        declared = getattr(module, "__all__", None)
        assert isinstance(declared, list), f"{name} declares no __all__"
        assert len(set(declared)) == len(declared), f"{name}.__all__ repeats a name"
        missing = [item for item in declared if not hasattr(module, item)]
        assert not missing, f"{name}.__all__ lists names it does not have: {missing}"


def module_name(path: Path) -> str:
    parts = path.relative_to(ROOT).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def source_files() -> Iterator[Path]:
    for folder in ("hwsigner", "tests", "scripts"):
        yield from sorted((ROOT / folder).rglob("*.py"))


def imported_names(path: Path) -> Iterator[tuple[str, str]]:
    """``(module, name)`` for each ``from hwsigner.module import name`` in ``path``, relative
    imports of the package resolved."""
    here = module_name(path)
    package = here if path.name == "__init__.py" else here.rpartition(".")[0]
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if not isinstance(node, ast.ImportFrom):
            continue
        module = node.module or ""
        if node.level:
            parts = package.split(".")
            module = ".".join(
                [*parts[: len(parts) - node.level + 1], *([module] if module else [])]
            )
        if module == "hwsigner" or module.startswith("hwsigner."):
            for alias in node.names:
                yield module, alias.name


def is_submodule(module: str, name: str) -> bool:
    folder = ROOT.joinpath(*module.split("."), name)
    return folder.with_suffix(".py").exists() or (folder / "__init__.py").exists()


def test_modules_use_each_other_only_through_their_declared_surface() -> None:
    """What one module (or a test, or a script) imports from another is in that module's
    ``__all__``, and no module's ``_private`` name is imported anywhere else."""
    problems = []
    for path in source_files():
        importer = module_name(path)
        for module, name in imported_names(path):
            if module == importer or is_submodule(module, name) or name.startswith("__"):
                continue  # a module, or __version__
            where = f"{path.relative_to(ROOT)}: from {module} import {name}"
            if name.startswith("_"):
                problems.append(f"{where} (a private name)")
                continue
            declared = getattr(importlib.import_module(module), "__all__", None)
            if (declared is not None or is_public(module)) and name not in (declared or ()):
                problems.append(f"{where} (not in its __all__)")
    assert not problems, "\n".join(problems)


def test_command_entry_points_are_in_their_module_surface() -> None:
    """The parser looks command modules up by name: their entry points are their surface."""
    for command, module_name_, _ in COMMANDS:
        module = importlib.import_module(f"hwsigner.cli.{module_name_}")
        snake = command.replace("-", "_")
        for entry in (f"add_{snake}_arguments", f"run_{snake}"):
            if not hasattr(module, entry):
                entry = "add_arguments" if entry.startswith("add_") else "run"
            assert entry in module.__all__, f"hwsigner.cli.{module_name_}: {entry} ({command})"


# The rows of docs/architecture.md, top to bottom: a module imports only from its own row and the
# rows below (a package by its name: every module in it belongs to its row).
LAYERS = (
    ("hwsigner", "__main__", "cli"),
    ("provision", "emulator", "devpki"),
    ("session",),
    ("delivery", "rolesanywhere", "settings", "transport"),
    ("identity", "certwatch"),
    ("keys",),
    ("sigv4x509", "x509rules", "x509certs", "credentials", "arns"),
    ("errors", "_safe", "_log"),
)


def layer_of(module: str) -> int:
    top = module.split(".")[1] if "." in module else module
    for row, names in enumerate(LAYERS):
        if top in names:
            return row
    raise AssertionError(f"{module}: put it in a row of docs/architecture.md and of LAYERS")


def test_imports_follow_the_layers_of_docs_architecture() -> None:
    upward = [
        f"{module} (row {layer_of(module)}) imports {target} (row {layer_of(target)})"
        for module, targets in graph().items()
        for target in targets
        if layer_of(target) < layer_of(module)
    ]
    assert not upward, "\n".join(upward)


def test_modules_are_small_and_not_too_many() -> None:
    """No module over 300 lines; at most 5.5 modules per 1,000 lines of package (h11: 4.3)."""
    sizes = {path: len(path.read_text().splitlines()) for path in PACKAGE.rglob("*.py")}
    big = {str(path.relative_to(ROOT)): n for path, n in sizes.items() if n > MAX_MODULE_LINES}
    assert set(big) == set(OVERSIZED), f"modules over {MAX_MODULE_LINES} lines: {big}"
    per_1000 = 1000 * len(sizes) / sum(sizes.values())
    assert per_1000 <= MAX_MODULES_PER_1000_LINES, f"{per_1000:.2f} modules per 1,000 lines"


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
