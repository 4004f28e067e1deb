"""The benchmark suite still runs: ``scripts/bench.py --quick`` prints every section and cleans up.

No timing is asserted (the numbers are the benchmark's business, docs/performance.md); this
checks the sections, the budget lines, that missing SoftHSM or swtpm are skipped with a reason,
and that nothing is left behind in the temporary directory.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from .helpers import REPO
from .softhsm import needs_softhsm
from .swtpm import needs_swtpm, needs_tpm2_openssl

SECTIONS = (
    "== start-up (",
    "== start-up imports (",
    "== signing in a long-running process (",
    "== hardware operations per CreateSession (",
    "== live pick-up: the look before each CreateSession (",
    "== serve: credential reads per second (",
    "== credential-process, cache miss, end to end (",
    "== budgets",
)


def run_bench(tmp_path: Path, *args: str) -> str:
    env = {**os.environ, "TMPDIR": str(tmp_path)}
    done = subprocess.run(
        [sys.executable, str(REPO / "scripts" / "bench.py"), *args],
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        env=env,
        timeout=600,
        start_new_session=True,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert "Traceback" not in done.stderr, done.stderr
    return done.stdout


def test_quick_run_prints_every_section_and_leaves_nothing(tmp_path: Path) -> None:
    out = run_bench(tmp_path, "--quick")
    positions = [out.find(section) for section in SECTIONS]
    assert -1 not in positions, out
    assert positions == sorted(positions), out
    for line in (
        "credential-process --cache, a hit (plain)",
        "credential-process --cache, a hit (editable)",
        "cryptography imported on a cache hit",
        "file key, EC P-256: hwsigner SigV4-X509 sign",
        "file key, RSA-2048: bare library sign",
        " 8 clients, keep-alive",
        "64 clients, new connection per read",
        "CreateSession calls for the whole run",
        "file: look at the source (one stat per file)",
        "hwsigner credential-process, file key",
    ):
        assert line in out, line
    assert "budgets met" in out
    assert list(tmp_path.iterdir()) == []  # the lab's directory is gone
    assert processes_mentioning(str(tmp_path)) == []  # emulator, swtpm and serve are stopped


def processes_mentioning(text: str) -> list[str]:
    """Command lines of running processes that contain ``text``."""
    found = []
    for cmdline in Path("/proc").glob("[0-9]*/cmdline"):
        try:
            command = cmdline.read_bytes().replace(b"\0", b" ").decode(errors="replace")
        except OSError:  # the process ended meanwhile
            continue
        if text in command:
            found.append(command)
    return found


def available(skip_if: pytest.MarkDecorator) -> bool:
    """Whether the components behind one of the fixtures' ``skipif`` markers are here."""
    return not skip_if.mark.args[0]


def test_hardware_keys_are_measured_or_skipped_with_a_reason(tmp_path: Path) -> None:
    out = run_bench(tmp_path, "--quick", "--only", "hardware")
    assert "== hardware operations per CreateSession (" in out
    assert "== start-up (" not in out
    if available(needs_softhsm):
        for line in ("softhsm: logins", "softhsm: trial signatures", "softhsm: signatures"):
            assert line in out, out
    else:
        assert "no softhsm key: " in out, out
    if available(needs_swtpm) and available(needs_tpm2_openssl):
        for line in ("swtpm: primary creations", "swtpm: key loads", "swtpm: signatures"):
            assert line in out, out
    else:
        assert "no swtpm key: " in out, out


def test_unknown_section_is_refused(tmp_path: Path) -> None:
    done = subprocess.run(
        [sys.executable, str(REPO / "scripts" / "bench.py"), "--only", "warp-speed"],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 2
    assert "unknown sections: warp-speed" in done.stderr
