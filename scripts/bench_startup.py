"""Start-up: what every ``aws ...`` command pays for ``credential_process``, and a cache miss.

    >>> startup(lab, report, rounds=30)       # cache hit and --help against python -c pass
    >>> imports(lab, report)                  # python -X importtime: the top offenders
    >>> end_to_end(lab, report, rounds=10)    # credential-process against the emulator

Each command is the console script users run (``bin/hwsigner``), started as a new process and
timed from spawn to exit, in turns with ``python -c pass`` of the same environment. Start-up is
measured in two: this venv, where hwsigner is an editable install, and a plain venv where it is
installed as pip installs it (``Lab.plain_bin``); the other sections use the plain one.
"""

from __future__ import annotations

import json
import subprocess
from functools import partial
from pathlib import Path

from bench_lab import DEV_BIN, Lab
from bench_report import Report, interleaved, millis

TOP_IMPORTS = 10
HIT_BUDGET = 1.15  # a cache hit (and an agent read), over python -c pass: issue 12
VERSION_BUDGET = 1.5  # hwsigner version, over python -c pass
MISS_BUDGET = 0.6  # a file-key cache miss, over the baseline's


def run(command: list[str], env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    done = subprocess.run(
        command, stdin=subprocess.DEVNULL, capture_output=True, text=True, env=env, timeout=120
    )
    if done.returncode != 0:
        raise RuntimeError(f"{' '.join(command[:3])} failed: {done.stderr.strip()}")
    return done


def cache_hit_command(lab: Lab, bin_dir: Path) -> list[str]:
    cache = ["--cache", "--cache-dir", str(lab.directory / f"cache-{bin_dir.parent.name}")]
    return [str(bin_dir / "hwsigner"), "credential-process", *cache, *lab.flags("file")]


def agent_command(lab: Lab, bin_dir: Path) -> list[str]:
    return [str(bin_dir / "hwsigner"), "credential-process", "--agent", str(lab.agent_socket)]


def places(lab: Lab, baseline: Path | None) -> dict[str, tuple[str, Path]]:
    """Short name -> (what it is, its bin directory)."""
    found = {
        "plain": ("this checkout, installed as pip installs it", lab.plain_bin()),
        "editable": ("this venv, hwsigner installed editable", DEV_BIN),
    }
    if baseline is not None:
        found["baseline"] = (f"the baseline ({lab.baseline}), installed the same way", baseline)
    return found


def startup(lab: Lab, report: Report, rounds: int, baseline: Path | None = None) -> None:
    report.section("start-up", f"{rounds} runs each, in turns; new process each, spawn to exit")
    env = lab.env
    where = places(lab, baseline)
    filled = {}
    for place, (_, bin_dir) in where.items():  # the misses that fill the caches
        filled[place] = run(cache_hit_command(lab, bin_dir), env).stdout
    before = lab.create_sessions()
    contenders = []
    for place, (_, bin_dir) in where.items():
        hwsigner = str(bin_dir / "hwsigner")
        contenders += [
            (f"{place} python", partial(run, [str(bin_dir / "python"), "-c", "pass"], env)),
            (f"{place} hit", partial(run, cache_hit_command(lab, bin_dir), env)),
            (f"{place} version", partial(run, [hwsigner, "version"], env)),
            (f"{place} help", partial(run, [hwsigner, "--help"], env)),
        ]
        if place == "plain":  # the agent runs from this install
            contenders.append((f"{place} agent", partial(run, agent_command(lab, bin_dir), env)))
    medians = interleaved(contenders, rounds)
    for place, (what, bin_dir) in where.items():
        base, hit = medians[f"{place} python"], medians[f"{place} hit"]
        budget = HIT_BUDGET if place == "plain" else None
        report.note(f"{what}:")
        report.row("  python -c pass", millis(base), ratio=1.0)
        if place == "plain":
            agent = medians[f"{place} agent"]
            report.row(f"  credential-process --agent ({place})", millis(agent),
                       ratio=agent / base, budget=budget)  # fmt: skip
        report.row(f"  credential-process --cache, a hit ({place})", millis(hit),
                   ratio=hit / base, budget=budget)  # fmt: skip
        version = medians[f"{place} version"]
        report.row(f"  hwsigner version ({place})", millis(version), ratio=version / base,
                   budget=VERSION_BUDGET if place == "plain" else None)  # fmt: skip
        help_time = medians[f"{place} help"]
        report.row("  hwsigner --help", millis(help_time), ratio=help_time / base)
        report.note(f"    a hit adds {millis(hit - base)} to a bare Python start-up")
        if run(cache_hit_command(lab, bin_dir), env).stdout != filled[place]:
            raise RuntimeError("a cache hit printed other credentials than the miss before")
    sessions = lab.create_sessions() - before
    report.count("CreateSession calls during the hits and agent reads", sessions, expected=0)


def import_times(
    bin_dir: Path, command: list[str], env: dict[str, str]
) -> dict[str, tuple[int, int]]:
    """``python -X importtime COMMAND``: module -> (own µs, cumulative µs)."""
    done = subprocess.run(
        [str(bin_dir / "python"), "-X", "importtime", *command],
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


def imports(lab: Lab, report: Report, baseline: Path | None = None) -> None:
    report.section(
        "start-up imports", "python -X importtime, installed as pip installs it; one run each"
    )
    env = lab.env
    where = {"plain": lab.plain_bin(), **({"baseline": baseline} if baseline else {})}
    for place, bin_dir in where.items():
        bare = import_times(bin_dir, ["-c", "pass"], env)
        hwsigner = str(bin_dir / "hwsigner")
        paths = {
            "agent read": agent_command(lab, bin_dir),
            "cache hit": cache_hit_command(lab, bin_dir),
            "version": [hwsigner, "version"],
            "cache miss, file key": [hwsigner, "credential-process", *lab.flags("file")],
        }
        for what, command in paths.items():
            if place == "baseline" and what == "agent read":
                continue
            found = import_times(bin_dir, command, env)
            _offenders(report, f"{what} ({place})", found, bare)
            if what == "cache hit":
                report.count(f"cryptography imported on a cache hit ({place}; 0 = no)",
                             int("cryptography" in found), expected=0)  # fmt: skip


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


def end_to_end(lab: Lab, report: Report, rounds: int, baseline: Path | None = None) -> None:
    kinds = lab.kinds()
    report.section(
        "credential-process, cache miss, end to end",
        f"{rounds} runs each, in turns, plain venv; open the key, sign, CreateSession",
    )
    env, bin_dir = lab.env, lab.plain_bin()
    hwsigner = str(bin_dir / "hwsigner")
    commands = {kind: [hwsigner, "credential-process", *lab.flags(kind)] for kind in kinds}
    if baseline is not None:
        commands["baseline file"] = [str(baseline / "hwsigner"), "credential-process",
                                     *lab.flags("file")]  # fmt: skip
    for kind, command in commands.items():
        answer = json.loads(run(command, env).stdout)
        if not answer.get("AccessKeyId"):
            raise RuntimeError(f"credential-process with the {kind} key printed no credentials")
    before = lab.create_sessions()
    contenders = [("python", partial(run, [str(bin_dir / "python"), "-c", "pass"], env))]
    contenders += [(kind, partial(run, command, env)) for kind, command in commands.items()]
    medians = interleaved(contenders, rounds)
    runs = (rounds + 1) * len(commands)  # interleaved() makes one warm-up call of each
    base = medians["python"]
    report.row("python -c pass", millis(base), ratio=1.0)
    for kind in kinds:
        ratio = medians[kind] / base
        report.row(f"hwsigner credential-process, {kind} key", millis(medians[kind]), ratio=ratio)
    if baseline is not None:
        old = medians["baseline file"]
        report.row(f"the baseline ({lab.baseline}), file key", millis(old), ratio=old / base)
        report.row("file key miss, this checkout over the baseline", millis(medians["file"]),
                   ratio=medians["file"] / old, budget=MISS_BUDGET)  # fmt: skip
    sessions = lab.create_sessions() - before
    report.count(f"CreateSession calls for {runs} runs (one each)", sessions, expected=runs)
