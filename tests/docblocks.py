"""Docs as tests: the fenced examples of README.md and docs/*.md, found, classified and run.

The convention (also in docs/README.md):

- Every fenced block whose info string is ``sh``, ``bash``, ``shell``, ``console`` or
  ``python``, and every ``ini`` block with a ``credential_process`` line, is run by
  tests/test_docs.py, in document order, in a throwaway directory per page.
- A block that cannot run here says so *visibly*, in a blockquote right above it (blank lines
  between are allowed) that starts with ``> Not run by the tests: needs`` and one of the
  reasons in ``REASONS``, then a sentence saying why; or, for a block another test runs in its
  own set-up (the benchmark, the demo), ``> Run by tests/test_NAME.py:`` and what it checks.
  Anything else fails the test, so a new page must decide for each of its blocks.
- Other blocks (``text``, ``json``, ``yaml``, bare fences: output, synopses) are not run.

How a page runs: ``HOME`` and the working directory are fresh directories; ``hwsigner`` and
``python`` are the test interpreter's; ``$TA``, ``$PROFILE``, ``$ROLE`` hold ARNs and ``$FLAGS``
the credential flags of a device whose files are ``device.pem``, ``device.key``,
``issuing-ca.pem`` and ``root-ca.pem`` (also under ``/etc/device/`` as ``cert.pem``,
``key.pem``, ``ca.pem``); ``AWS_ENDPOINT_URL_ROLESANYWHERE`` points at an emulator that trusts
``root-ca.pem``; ``SOFTHSM2_CONF`` points at an empty SoftHSM; ``TPM2TOOLS_TCTI`` and
``TPM2OPENSSL_TCTI`` at a fresh swtpm (pages that use a TPM). Absolute paths under
``SYSTEM_DIRS`` are moved into the throwaway directory. Shell blocks run with
``bash -euo pipefail``; a ``console`` block runs its ``$ `` lines. Python blocks of a page run in
one process and one namespace, in order. ``credential_process`` lines run through
``/bin/sh -c``, as the JavaScript SDKs run them, and their output goes through botocore's own
``credential_process`` provider.
"""

from __future__ import annotations

import contextlib
import functools
import os
import re
import shlex
import signal
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
RUN_LANGUAGES = ("sh", "bash", "shell", "console", "python")
REASONS = (
    "real hardware",
    "a real AWS account",
    "systemd as init",
    "a Kubernetes cluster",
    "root",
    "the demo",
)
MARKER = re.compile(
    r"^> (Not run by the tests: needs (" + "|".join(REASONS) + r")\b\S*\s+\S"
    r"|Run by `?tests/\w+\.py`?[:;,. ])"
)
SYSTEM_DIRS = (
    "/etc/device",
    "/etc/hwsigner",
    "/var/lib/device",
    "/run/factory",
    "/run/hwsigner",
    "/run/secrets",
)
FENCE = re.compile(r"^(\s*)(```+)\s*([\w+-]*)")
TIMEOUT = 60


@dataclass(frozen=True, slots=True)
class Block:
    page: str  # path relative to the repository
    line: int  # 1-based line of the opening fence
    language: str
    text: str
    untested: str | None  # the marker's text, when the block says why it is not run

    @property
    def where(self) -> str:
        return f"{self.page}:{self.line}"

    @property
    def to_run(self) -> bool:
        if self.language in RUN_LANGUAGES:
            return True
        return self.language == "ini" and "credential_process" in self.text


def pages() -> list[Path]:
    return [REPO / "README.md", *sorted((REPO / "docs").glob("*.md"))]


def blocks(path: Path, root: Path = REPO) -> list[Block]:
    """Every fenced block of a Markdown page, with the marker above it if there is one."""
    path = root / path
    lines = path.read_text(encoding="utf-8").splitlines()
    found, index = [], 0
    page = str(path.relative_to(root))
    while index < len(lines):
        opening = FENCE.match(lines[index])
        if not opening:
            index += 1
            continue
        indent, fence, language = opening.groups()
        end = index + 1
        while end < len(lines) and not lines[end].strip().startswith(fence):
            end += 1
        body = "\n".join(line.removeprefix(indent) for line in lines[index + 1 : end])
        found.append(Block(page, index + 1, language, body + "\n", _marker(lines, index)))
        index = end + 1
    return found


def _marker(lines: list[str], fence: int) -> str | None:
    """The blockquote right above line ``fence``, when it is a not-run marker."""
    above = fence - 1
    while above >= 0 and not lines[above].strip():
        above -= 1
    quote: list[str] = []
    while above >= 0 and lines[above].lstrip().startswith(">"):
        quote.insert(0, lines[above].strip())
        above -= 1
    text = " ".join(quote)
    return text if quote and MARKER.match(quote[0]) else None


def relocate(text: str, work: Path) -> str:
    for directory in SYSTEM_DIRS:
        text = text.replace(directory, f"{work}{directory}")
    return text


@dataclass(frozen=True, slots=True)
class PageEnv:
    work: Path
    env: dict[str, str]
    placeholders: dict[str, str]
    groups: list[int] = field(default_factory=list)  # process groups to end with the page

    def end(self) -> None:
        """Stop what the page's blocks left running in the background (servers)."""
        for group in self.groups:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(group, signal.SIGTERM)


def _run(command: list[str], page: PageEnv, where: str, stdin: str | None = None) -> str:
    """Run in a new process group, which ``PageEnv.end`` stops with whatever the block left
    running in the background (as in a terminal, a server started by one block serves the
    next); output goes to a file so background jobs cannot hold a pipe open."""
    log = page.work / ".block-output"
    with open(log, "w+b") as out:
        process = subprocess.Popen(
            command, cwd=page.work, env=page.env, stdout=out, stderr=subprocess.STDOUT,
            stdin=subprocess.PIPE if stdin is not None else subprocess.DEVNULL,
            start_new_session=True,
        )  # fmt: skip
        page.groups.append(process.pid)
        try:
            process.communicate(None if stdin is None else stdin.encode(), timeout=TIMEOUT)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()
        out.seek(0)
        output = out.read().decode(errors="replace")
    if process.returncode != 0:
        raise AssertionError(f"{where}: exit status {process.returncode}\n{output}")
    return output


def run_shell(block: Block, page: PageEnv) -> str:
    script = relocate(block.text, page.work)
    if block.language == "console":
        script = "\n".join(console_commands(script)) + "\n"
    return _run(["bash", "-euo", "pipefail", "-c", script], page, block.where)


def console_commands(text: str) -> list[str]:
    """The ``$ `` commands of a console transcript, continuation lines joined."""
    commands: list[str] = []
    lines = iter(text.splitlines())
    for line in lines:
        if not line.startswith("$ "):
            continue
        command = line[2:]
        while command.endswith("\\"):
            command = command[:-1] + next(lines, "")
        commands.append(command)
    return commands


def run_python(blocks: list[Block], page: PageEnv) -> str:
    """Every python block of a page, in one interpreter and one namespace."""
    runner = (
        "import sys\nnamespace = {'__name__': '__main__'}\n"
        "for where, code in BLOCKS:\n"
        "    exec(compile(code, where, 'exec'), namespace)\n"
    )
    pairs = [(b.where, relocate(b.text, page.work)) for b in blocks]
    script = f"BLOCKS = {pairs!r}\n{runner}"
    where = ", ".join(b.where for b in blocks)
    return _run([sys.executable, "-"], page, where, stdin=script)


def credential_process_lines(block: Block, page: PageEnv) -> list[str]:
    """The ``credential_process`` values of an ini block, placeholders filled in."""
    values = []
    for line in block.text.splitlines():
        name, _, value = line.partition("=")
        if name.strip() == "credential_process":
            value = relocate(value.strip(), page.work)
            for placeholder, filled in page.placeholders.items():
                value = re.sub(rf"\$?\b{placeholder}\b", lambda _m, f=filled: f, value)
            values.append(value)
    return values


def check_credential_process(command: str, page: PageEnv, where: str) -> None:
    """Run ``command`` through /bin/sh -c, as the AWS SDK for JavaScript does, and have
    botocore's credential_process provider read what it prints."""
    from botocore.credentials import ProcessProvider
    from botocore.exceptions import CredentialRetrievalError

    profile = {"credential_process": shlex.join(["/bin/sh", "-c", command])}
    provider = ProcessProvider(
        "doc",
        lambda: {"profiles": {"doc": profile}},
        popen=functools.partial(subprocess.Popen, cwd=page.work, env=page.env),
    )
    try:
        credentials = provider.load()
    except CredentialRetrievalError as exc:
        raise AssertionError(f"{where}: credential_process failed: {exc}") from None
    assert credentials is not None, where
    frozen = credentials.get_frozen_credentials()
    assert frozen.access_key.startswith("ASIA") and frozen.token, where
