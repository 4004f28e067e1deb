"""Docs as tests: every example of README.md and docs/*.md runs as written, or says visibly why
it cannot (real hardware, a real AWS account, systemd as init, a Kubernetes cluster, root).
The convention and the environment a page runs in: tests/docblocks.py and docs/README.md."""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from hwsigner.devpki import DevPki

from .conftest import RunningEmulator
from .delivery import AWS_VARIABLES
from .docblocks import (
    REASONS,
    Block,
    PageEnv,
    blocks,
    check_credential_process,
    console_commands,
    credential_process_lines,
    pages,
    run_python,
    run_shell,
)
from .helpers import PROFILE_ARN, REPO, ROLE_ARN, TRUST_ANCHOR_ARN
from .swtpm import Swtpm

PAGES = pages()
IDS = [str(page.relative_to(REPO)) for page in PAGES]


def uses_tpm(text: str) -> bool:
    return "TPM2OPENSSL_TCTI" in text or "tpm2_" in text or "--tpm " in text


@pytest.mark.parametrize("page", PAGES, ids=IDS)
def test_every_shell_example_says_what_it_is(page: Path) -> None:
    """A fence with no language that holds commands must say whether it is shell (run) or
    text (a synopsis or output), so no example escapes the rule by accident."""
    for block in blocks(page):
        if block.language:
            continue
        first = block.text.lstrip().split("\n", 1)[0]
        assert not first.startswith(("$ ", "hwsigner ", "sudo ")), (
            f"{block.where}: give this fence a language: sh/console (run by the tests) or text"
        )


@pytest.mark.parametrize("page", PAGES, ids=IDS)
def test_markers_name_a_reason(page: Path) -> None:
    """A blockquote that looks like a not-run marker but names no known reason is a typo that
    would make the block run (or fail) silently: say so."""
    for number, line in enumerate(page.read_text().splitlines(), 1):
        named = re.match(r"> Run by `?(tests/\S+?\.py)", line)
        if named:
            assert (REPO / named.group(1)).is_file(), f"{page.name}:{number}: no {named.group(1)}"
        if line.startswith("> Not run by the tests"):
            assert any(f"needs {reason}" in line for reason in REASONS), (
                f"{page.name}:{number}: the reason must be one of: needs {', needs '.join(REASONS)}"
            )


@pytest.fixture
def page_env(
    tmp_path: Path, pki: DevPki, emulator: RunningEmulator, request: pytest.FixtureRequest
) -> Iterator[PageEnv]:
    page: Path = request.param
    work, home = tmp_path / "work", tmp_path / "home"
    work.mkdir()
    home.mkdir()
    (tmp_path / "run").mkdir(mode=0o700)
    cert, key = pki.new_leaf("ec-p256", f"docs-{page.stem}")
    files = {
        "device.pem": cert,
        "device.key": key,
        "issuing-ca.pem": pki.issuing_cert,
        "ca-chain.pem": pki.issuing_cert,
        "root-ca.pem": pki.root_cert,
        "etc/device/cert.pem": cert,
        "etc/device/key.pem": key,
        "etc/device/ca.pem": pki.issuing_cert,
    }
    for name, source in files.items():
        (work / name).parent.mkdir(parents=True, exist_ok=True)
        (work / name).write_bytes(Path(source).read_bytes())
    (work / "device.key").chmod(0o600)
    (work / "scripts").symlink_to(REPO / "scripts")  # the working directory stands for a checkout
    shutil.copytree(pki.directory, home / "pki")  # the dev PKI the emulator trusts, as ~/pki
    softhsm = home / "softhsm"  # where docs/pkcs11.md's walkthrough makes one
    (softhsm / "tokens").mkdir(parents=True)
    (softhsm / "softhsm2.conf").write_text(f"directories.tokendir = {softhsm / 'tokens'}\n")
    flags = (
        f"--certificate {work}/etc/device/cert.pem --private-key {work}/etc/device/key.pem "
        f"--intermediates {work}/etc/device/ca.pem --trust-anchor-arn {TRUST_ANCHOR_ARN} "
        f"--profile-arn {PROFILE_ARN} --role-arn {ROLE_ARN}"
    )
    env = {k: v for k, v in os.environ.items() if k not in AWS_VARIABLES and "PKCS11" not in k}
    env.update(
        HOME=str(home),
        XDG_RUNTIME_DIR=str(tmp_path / "run"),  # the agent's default socket, one per page
        PATH=f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '/usr/bin:/bin')}",
        PYTHONPATH=str(REPO),
        TA=TRUST_ANCHOR_ARN,
        PROFILE=PROFILE_ARN,
        ROLE=ROLE_ARN,
        FLAGS=flags,
        AWS_ENDPOINT_URL_ROLESANYWHERE=emulator.url,
        SOFTHSM2_CONF=str(softhsm / "softhsm2.conf"),
        AWS_EC2_METADATA_DISABLED="true",
    )
    placeholders = {"TA": TRUST_ANCHOR_ARN, "PROFILE": PROFILE_ARN, "ROLE": ROLE_ARN}
    placeholders["FLAGS"] = flags
    with contextlib.ExitStack() as stack:
        if uses_tpm(page.read_text()):
            if not shutil.which("swtpm"):
                pytest.skip("swtpm is not installed: this page's TPM examples cannot run")
            env.update(stack.enter_context(Swtpm.running(tmp_path / "swtpm")).env)
        page_env = PageEnv(work, env, placeholders)
        stack.callback(page_env.end)
        yield page_env


def runnable(page: Path) -> list[Block]:
    return [block for block in blocks(page) if block.to_run and block.untested is None]


RUN_PAGES = [page for page in PAGES if runnable(page)]


@pytest.mark.parametrize(
    "page_env", RUN_PAGES, ids=[str(p.relative_to(REPO)) for p in RUN_PAGES], indirect=True
)
def test_page_examples_run(page_env: PageEnv, request: pytest.FixtureRequest) -> None:
    """Shell and credential_process examples in document order, then the page's Python."""
    page: Path = request.node.callspec.params["page_env"]
    python: list[Block] = []
    for block in runnable(page):
        if block.language == "python":
            python.append(block)
        elif block.language == "ini":
            lines = credential_process_lines(block, page_env)
            assert lines, block.where
            for line in lines:
                check_credential_process(line, page_env, block.where)
        else:
            run_shell(block, page_env)
    if python:
        run_python(python, page_env)


def test_the_harness_reads_markers_and_languages(tmp_path: Path) -> None:
    """The rules themselves, on a page made for the purpose."""
    page = tmp_path / "page.md"
    page.write_text(
        "> Not run by the tests: needs a real AWS account (it calls STS).\n\n"
        "```sh\naws sts get-caller-identity\n```\n\n"
        "> Not run by the tests: needs patience.\n\n"
        "```sh\nsleep 1000\n```\n\n"
        "1. a list item\n\n   ```console\n   $ hwsigner version\n   0.1\n   ```\n\n"
        '```json\n{"a": 1}\n```\n\n'
        "```ini\n[profile x]\nregion = us-east-1\n```\n"
    )
    found = blocks(page.relative_to(tmp_path), root=tmp_path)
    assert [(b.language, b.to_run, b.untested is not None) for b in found] == [
        ("sh", True, True),
        ("sh", True, False),  # "patience" is no reason: this block would run
        ("console", True, False),
        ("json", False, False),
        ("ini", False, False),
    ]
    assert found[2].text == "$ hwsigner version\n0.1\n"
    assert console_commands(found[2].text) == ["hwsigner version"]
