#!/usr/bin/env python3
"""hwsigner's benchmark suite: start-up, signing cost, hardware operations, serve, end to end.

    .venv/bin/python scripts/bench.py              # the full run, a few minutes
    .venv/bin/python scripts/bench.py --quick      # every section, few rounds (a smoke run)
    .venv/bin/python scripts/bench.py --only startup,signing

Each section times hwsigner against a baseline in the same run, in turns, and prints medians
and ratios; a line with a budget says whether it meets it. The budgets are information, never
a failure: the exit status is 0 whatever the numbers. Sections that need SoftHSM or swtpm skip
those keys when they are missing. Everything runs on loopback in a temporary directory.
Results and how to read them: docs/performance.md.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import platform
import subprocess
import sys
import time
from dataclasses import dataclass
from importlib.metadata import PackageNotFoundError, version

from bench_lab import Lab
from bench_report import Report
from bench_serve import serve
from bench_signing import hardware_ops, signing
from bench_startup import end_to_end, imports, startup

SECTIONS = ("startup", "imports", "signing", "hardware", "serve", "end-to-end")


@dataclass(frozen=True)
class Rounds:
    startup: int
    signing: int
    sessions: int
    serve_seconds: float
    end_to_end: int


FULL = Rounds(startup=60, signing=400, sessions=50, serve_seconds=3.0, end_to_end=15)
QUICK = Rounds(startup=3, signing=5, sessions=3, serve_seconds=0.3, end_to_end=1)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="few rounds: checks it all runs")
    parser.add_argument(
        "--only", metavar="SECTIONS", help=f"comma-separated, of: {', '.join(SECTIONS)}"
    )
    parser.add_argument(
        "--baseline",
        metavar="REV",
        help="also measure this git revision (e.g. the last release), installed the same way",
    )
    args = parser.parse_args()
    wanted = args.only.split(",") if args.only else list(SECTIONS)
    unknown = sorted(set(wanted) - set(SECTIONS))
    if unknown:
        parser.error(f"unknown sections: {', '.join(unknown)}")
    rounds = QUICK if args.quick else FULL
    describe_machine(quick=args.quick)
    report = Report()
    started = time.monotonic()
    with Lab.start() as lab:
        if {"signing", "hardware", "end-to-end"} & set(wanted):
            lab.add_softhsm()
            lab.add_swtpm()
        for kind, reason in lab.missing.items():
            report.note(f"no {kind} key: {reason}")
        baseline = lab.baseline_bin(args.baseline) if args.baseline else None
        if {"startup", "imports"} & set(wanted):
            lab.start_agent(lab.plain_bin())
        if "startup" in wanted:
            startup(lab, report, rounds.startup, baseline)
        if "imports" in wanted:
            imports(lab, report, baseline)
        if "signing" in wanted:
            signing(lab, report, rounds.signing)
        if "hardware" in wanted:
            hardware_ops(lab, report, rounds.sessions)
        if "serve" in wanted:
            serve(lab, report, rounds.serve_seconds)
        if "end-to-end" in wanted:
            end_to_end(lab, report, rounds.end_to_end, baseline)
    report.summary()
    print(f"\n(took {time.monotonic() - started:.0f} s)")
    return 0


def describe_machine(*, quick: bool) -> None:
    print("hwsigner benchmark" + (" (--quick: too few rounds for real numbers)" if quick else ""))
    cpu = "unknown CPU"
    with contextlib.suppress(OSError, StopIteration), open("/proc/cpuinfo") as f:
        cpu = next(line.split(":", 1)[1].strip() for line in f if line.startswith("model name"))
    system = f"{platform.system()} {platform.release()}"
    with contextlib.suppress(OSError):
        system += f", {platform.freedesktop_os_release()['PRETTY_NAME']}"
    print(f"machine: {cpu}, {os.cpu_count()} CPUs, {system}")
    python = f"{platform.python_implementation()} {platform.python_version()}"
    print(f"python:  {python} ({sys.executable})")
    versions = []
    for name in ("cryptography", "python-pkcs11", "tpm2-pytss"):
        with contextlib.suppress(PackageNotFoundError):
            versions.append(f"{name} {version(name)}")
    for tool in (["softhsm2-util", "--version"], ["swtpm", "--version"]):
        with contextlib.suppress(OSError, subprocess.SubprocessError):
            out = subprocess.run(tool, capture_output=True, text=True, timeout=10).stdout
            versions.append(f"{tool[0]} {out.split(',')[0].split()[-1] if out else '?'}")
    print(f"versions: {', '.join(versions)}")


if __name__ == "__main__":
    sys.exit(main())
