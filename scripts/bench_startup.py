"""Start-up: what every ``aws ...`` command pays for ``credential_process``, and a cache miss.

    >>> startup(lab, report, rounds=30)       # cache hit and --help against python -c pass
    >>> imports(lab, report)                  # python -X importtime: the top offenders
    >>> end_to_end(lab, report, rounds=10)    # credential-process against the emulator

Each command is the console script users run (``.venv/bin/hwsigner``), started as a new
process and timed from spawn to exit, in turns with ``python -c pass`` in the same environment.
"""

from __future__ import annotations

import json
import subprocess
import sys
from functools import partial

from bench_lab import HWSIGNER, Lab
from bench_report import Report, interleaved, millis

PYTHON_PASS = [sys.executable, "-c", "pass"]
TOP_IMPORTS = 10


def run(command: list[str], env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    done = subprocess.run(
        command, stdin=subprocess.DEVNULL, capture_output=True, text=True, env=env, timeout=120
    )
    if done.returncode != 0:
        raise RuntimeError(f"{' '.join(command[:3])} failed: {done.stderr.strip()}")
    return done


def cache_hit_command(lab: Lab) -> list[str]:
    cache_dir = lab.directory / "cache"
    cache = ["--cache", "--cache-dir", str(cache_dir)]
    return [HWSIGNER, "credential-process", *cache, *lab.flags("file")]


def startup(lab: Lab, report: Report, rounds: int) -> None:
    report.section("start-up", f"{rounds} runs each, in turns; new process each, spawn to exit")
    env = lab.env
    hit = cache_hit_command(lab)
    filled = run(hit, env).stdout  # the cache miss that fills the cache
    before = lab.create_sessions()
    medians = interleaved(
        [
            ("python", partial(run, PYTHON_PASS, env)),
            ("hit", partial(run, hit, env)),
            ("help", partial(run, [HWSIGNER, "--help"], env)),
        ],
        rounds,
    )
    answered = run(hit, env).stdout
    base = medians["python"]
    report.row("python -c pass", millis(base), ratio=1.0)
    report.row(
        "hwsigner credential-process --cache (hit)",
        millis(medians["hit"]),
        ratio=medians["hit"] / base,
        budget=2.0,
    )
    report.row("hwsigner --help", millis(medians["help"]), ratio=medians["help"] / base)
    report.note(f"cache hit adds {millis(medians['hit'] - base)} to a bare Python start-up")
    report.count("CreateSession calls during the cache hits", lab.create_sessions() - before)
    if answered != filled:
        raise RuntimeError("the cache hit printed other credentials than the miss that filled it")


def import_times(command: list[str], env: dict[str, str]) -> dict[str, tuple[int, int]]:
    """``python -X importtime``: module -> (self µs, cumulative µs)."""
    done = subprocess.run(
        [sys.executable, "-X", "importtime", *command],
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
    )
    found = {}
    for line in done.stderr.splitlines():
        if not line.startswith("import time:") or "[us]" in line:
            continue
        self_us, cumulative, name = line.removeprefix("import time:").split("|")
        found[name.strip()] = (int(self_us), int(cumulative))
    return found


def imports(lab: Lab, report: Report) -> None:
    report.section("start-up imports", "python -X importtime, one run each; import time only")
    env = lab.env
    bare = import_times(["-c", "pass"], env)
    hit = import_times(cache_hit_command(lab), env)
    _offenders(report, "cache hit", hit, bare)
    heavy = [m for m in ("cryptography", "pkcs11", "tpm2_pytss", "logging", "datetime") if m in hit]
    report.note(f"heavy modules imported on a cache hit: {', '.join(heavy) or 'none'}")
    report.count(
        "cryptography imported on a cache hit (0 = no)", int("cryptography" in hit), expected=0
    )
    miss = import_times([HWSIGNER, "credential-process", *lab.flags("file")], env)
    _offenders(report, "cache miss, file key", miss, bare)


def _offenders(
    report: Report, what: str, found: dict[str, tuple[int, int]], bare: dict[str, tuple[int, int]]
) -> None:
    extra = {name: times for name, times in found.items() if name not in bare}
    total = sum(own for own, _ in extra.values())
    report.note(
        f"{what}: {len(extra)} modules more than python -c pass ({len(bare)}), "
        f"{total / 1000:.1f} ms of import time (inflated by -X importtime)"
    )
    report.note(f"  top {TOP_IMPORTS} by own time:                own   cumulative")
    by_own = sorted(extra.items(), key=lambda item: -item[1][0])
    for name, (own, cumulative) in by_own[:TOP_IMPORTS]:
        report.note(f"    {name:<36} {own / 1000:6.2f} ms  {cumulative / 1000:6.2f} ms")


def end_to_end(lab: Lab, report: Report, rounds: int) -> None:
    kinds = lab.kinds()
    report.section(
        "credential-process, cache miss, end to end",
        f"{rounds} runs each, in turns; open the key, sign, CreateSession on the emulator",
    )
    env = lab.env
    commands = {kind: [HWSIGNER, "credential-process", *lab.flags(kind)] for kind in kinds}
    for kind, command in commands.items():
        answer = json.loads(run(command, env).stdout)
        if not answer.get("AccessKeyId"):
            raise RuntimeError(f"credential-process with the {kind} key printed no credentials")
    before = lab.create_sessions()
    contenders = [("python", partial(run, PYTHON_PASS, env))]
    contenders += [(kind, partial(run, command, env)) for kind, command in commands.items()]
    medians = interleaved(contenders, rounds)
    runs = (rounds + 1) * len(kinds)  # interleaved() makes one warm-up call of each
    base = medians["python"]
    report.row("python -c pass", millis(base), ratio=1.0)
    for kind in kinds:
        ratio = medians[kind] / base
        report.row(f"hwsigner credential-process, {kind} key", millis(medians[kind]), ratio=ratio)
    sessions = lab.create_sessions() - before
    report.count(f"CreateSession calls for {runs} runs (one each)", sessions, expected=runs)
