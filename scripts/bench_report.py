"""Timing in turns and the tables the benchmark prints.

    >>> medians = interleaved([("hwsigner", sign), ("bare", bare_sign)], rounds=50, batch=20)
    >>> report = Report()
    >>> report.section("signing")
    >>> report.row("file EC P-256", f"{micros(medians['hwsigner'])}", ratio=1.3, budget=1.5)

Every comparison is timed in turns (A, B, then B, A, ...), so both sides see the same machine
state, and summarized by medians. A budget verdict is information printed with the row; the
benchmark never fails because of one.
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

Contender = tuple[str, Callable[[], object]]


def interleaved(contenders: Sequence[Contender], rounds: int, batch: int = 1) -> dict[str, float]:
    """Median seconds per call of each contender; each round times ``batch`` calls of each,
    and every other round runs them in reverse order."""
    for _, call in contenders:
        call()  # warm-up: first calls pay for imports and caches
    samples: dict[str, list[float]] = {name: [] for name, _ in contenders}
    for turn in range(rounds):
        order = contenders if turn % 2 == 0 else list(reversed(contenders))
        for name, call in order:
            started = time.perf_counter()
            for _ in range(batch):
                call()
            samples[name].append((time.perf_counter() - started) / batch)
    return {name: statistics.median(times) for name, times in samples.items()}


def micros(seconds: float) -> str:
    return f"{seconds * 1e6:.1f} µs"


def millis(seconds: float) -> str:
    return f"{seconds * 1e3:.2f} ms"


@dataclass
class Verdict:
    section: str
    what: str
    measured: str
    budget: str
    ok: bool


@dataclass
class Report:
    """Prints sections and rows as they come, and keeps the budget lines for the summary."""

    verdicts: list[Verdict] = field(default_factory=list)
    _section: str = ""

    def section(self, title: str, note: str = "") -> None:
        self._section = title
        print(f"\n== {title}" + (f" ({note})" if note else ""), flush=True)

    def skip(self, title: str, reason: str) -> None:
        print(f"\n== {title}: skipped ({reason})", flush=True)

    def row(
        self,
        what: str,
        value: str,
        *,
        ratio: float | None = None,
        budget: float | None = None,
        at_least: bool = False,
        measure: float | None = None,
    ) -> None:
        """One measured line. With ``budget``, ``measure`` (by default ``ratio``) is held to it:
        at most ``budget``, or at least it when ``at_least``."""
        ratio_text = f"{ratio:.2f}x" if ratio is not None else ""
        measure = ratio if measure is None else measure
        verdict = ""
        if budget is not None and measure is not None:
            ok = measure >= budget if at_least else measure <= budget
            bound = f">= {budget:g}" if at_least else f"<= {budget:g}"
            verdict = f"{bound:>9}  {'ok' if ok else 'MISSED'}"
            self.verdicts.append(Verdict(self._section, what, ratio_text or value, bound, ok))
        print(f"  {what:<46} {value:>14} {ratio_text:>8}  {verdict}".rstrip(), flush=True)

    def count(self, what: str, value: int, *, expected: int | None = None) -> None:
        """A counted hardware operation; ``expected`` is the exact budget, if there is one."""
        verdict = ""
        if expected is not None:
            ok = value == expected
            verdict = f"{'== ' + str(expected):>9}  {'ok' if ok else 'MISSED'}"
            self.verdicts.append(Verdict(self._section, what, str(value), f"== {expected}", ok))
        print(f"  {what:<46} {value:>14} {'':>8}  {verdict}".rstrip(), flush=True)

    def note(self, text: str) -> None:
        print(f"  {text}", flush=True)

    def summary(self) -> bool:
        """Print every budget line again; True when all are met."""
        print("\n== budgets", flush=True)
        for v in self.verdicts:
            mark = "ok    " if v.ok else "MISSED"
            print(f"  {mark} {v.section}: {v.what}: {v.measured} (budget {v.budget})", flush=True)
        met = sum(v.ok for v in self.verdicts)
        print(f"  {met} of {len(self.verdicts)} budgets met", flush=True)
        return met == len(self.verdicts)
