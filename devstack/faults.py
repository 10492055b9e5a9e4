"""``scripts/dev faults``: the fault suite run N times, optionally beside busy CPU processes, and a
table of what every case's ``LEDGER`` line said across the runs.

A fault case prints one line, ``LEDGER case=<name> key=value ...`` (``tests/faults/ledger.py`` makes it
with :func:`ledger_line`). Each pytest run writes a JUnit XML file whose test cases carry their
captured output, so a line is read together with the outcome of the test that printed it. Figures
are added up per test: versions produced, lost and unexpected are summed, ``resume_s`` is the worst
(largest) of the runs, and a figure that is not a number (``outcome=relist``) is shown as how often
each value came.

Contention: ``--contention K`` starts K processes that spin on the CPU for the whole run, at the
priority of the tests. Each one ends by itself when this runner is gone (its parent changes) or at
``--contention-limit``, and the runner ends them on any exit, so nothing outlives the run.
"""

from __future__ import annotations

import argparse
import contextlib
import math
import os
import re
import signal
import subprocess
import sys
import tempfile
import time
import xml.etree.ElementTree as ET
from collections import Counter
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from types import FrameType
from typing import BinaryIO

PREFIX = "LEDGER"
_KEY = re.compile(r"[a-z_][a-z0-9_]*")
#: Figures summed over runs; ``resume_s`` is taken at its worst.
SUMMED = ("produced", "lost", "unexpected")
WORST = "resume_s"


def ledger_line(case: str, figures: Mapping[str, object]) -> str:
    """``LEDGER case=<case> k=v ...``: one token per figure, so a value never holds whitespace."""
    parts = [PREFIX, f"case={_token(case)}"]
    for key, value in figures.items():
        if not _KEY.fullmatch(key) or key == "case":
            raise ValueError(f"figure name {key!r} is not lowercase_with_underscores (or is 'case')")
        parts.append(f"{key}={_token(value)}")
    return " ".join(parts)


def _token(value: object) -> str:
    return "_".join(str(value).split()) or "-"


@dataclass(frozen=True)
class Ledger:
    """One parsed ``LEDGER`` line: the case's name and its figures as written."""

    case: str
    figures: dict[str, str]

    def number(self, key: str) -> float | None:
        """A figure as a number (``inf`` included), or None if absent or not a number."""
        try:
            return float(self.figures[key])
        except (KeyError, ValueError):
            return None


def parse_ledger(line: str) -> Ledger | None:
    """The ``LEDGER`` line in ``line`` (it may follow other text, as pytest's output does), or None."""
    words = line.split()
    if PREFIX not in words:
        return None
    figures: dict[str, str] = {}
    for word in words[words.index(PREFIX) + 1 :]:
        key, sep, value = word.partition("=")
        if not sep or not _KEY.fullmatch(key):
            return None
        figures[key] = value
    case = figures.pop("case", None)
    if not case:
        return None
    return Ledger(case, figures)


def ledgers(text: str) -> list[Ledger]:
    return [found for line in text.splitlines() if (found := parse_ledger(line)) is not None]


@dataclass(frozen=True)
class Outcome:
    """One test of one run: its id, whether it passed, and the LEDGER lines it printed."""

    test: str
    passed: bool
    skipped: bool = False
    ledgers: tuple[Ledger, ...] = ()


@dataclass
class Row:
    """One test across runs."""

    test: str
    cases: set[str] = field(default_factory=set)
    runs: int = 0
    passed: int = 0
    failed: int = 0
    sums: dict[str, float] = field(default_factory=lambda: dict.fromkeys(SUMMED, 0.0))
    #: How many lines had each summed figure ("-" in the table if none had it).
    counted: Counter[str] = field(default_factory=Counter)
    worst_resume: float | None = None
    values: dict[str, Counter[str]] = field(default_factory=dict)


def aggregate(outcomes: Iterable[Outcome]) -> list[Row]:
    """Per test, in the order first seen: runs, passed, failed and the figures added up."""
    rows: dict[str, Row] = {}
    for outcome in outcomes:
        if outcome.skipped:
            continue
        row = rows.setdefault(outcome.test, Row(outcome.test))
        row.runs += 1
        row.passed += outcome.passed
        row.failed += not outcome.passed
        for ledger in outcome.ledgers:
            row.cases.add(ledger.case)
            for key in SUMMED:
                value = ledger.number(key)
                if value is not None:
                    row.counted[key] += 1
                    row.sums[key] += value
            resume = ledger.number(WORST)
            if resume is not None and not math.isnan(resume):
                row.worst_resume = resume if row.worst_resume is None else max(row.worst_resume, resume)
            for key, text in ledger.figures.items():
                if key not in (*SUMMED, WORST) and not _numeric(text):
                    row.values.setdefault(key, Counter())[text] += 1
    return list(rows.values())


def _numeric(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True


_COLUMNS = ("test", "case", "runs", "passed", "failed", "produced", "lost", "unexpected", "worst resume_s")


def table(rows: Sequence[Row]) -> str:
    """The summary as aligned text, one line per test, and below it the non-numeric figures."""
    body = []
    for row in rows:
        figures = [_sum(row, key) for key in SUMMED]
        resume = "-" if row.worst_resume is None else f"{row.worst_resume:.1f}"
        body.append([row.test, ",".join(sorted(row.cases)) or "-", str(row.runs), str(row.passed),
                     str(row.failed), *figures, resume])  # fmt: skip
    widths = [max(len(c), *(len(line[i]) for line in body)) if body else len(c) for i, c in enumerate(_COLUMNS)]
    lines = ["  ".join(c.ljust(w) for c, w in zip(_COLUMNS, widths, strict=True)).rstrip()]
    lines += ["  ".join(v.ljust(w) for v, w in zip(line, widths, strict=True)).rstrip() for line in body]
    for row in rows:
        for key, counts in sorted(row.values.items()):
            shown = ", ".join(f"{value} x{n}" for value, n in sorted(counts.items()))
            lines.append(f"  {row.test}: {key}: {shown}")
    return "\n".join(lines)


def _sum(row: Row, key: str) -> str:
    if not row.counted[key]:
        return "-"
    value = row.sums[key]
    return f"{value:.0f}" if value.is_integer() else f"{value:.1f}"


def junit_outcomes(path: Path) -> list[Outcome]:
    """The tests of one pytest run's ``--junitxml`` file (written with ``junit_logging=system-out``)."""
    root = ET.parse(path).getroot()  # noqa: S314 - the file our own pytest run just wrote
    found = []
    for case in root.iter("testcase"):
        module = case.get("classname", "").rpartition(".")[2]
        test = f"{module}::{case.get('name', '?')}" if module else case.get("name", "?")
        failed = case.find("failure") is not None or case.find("error") is not None
        skipped = case.find("skipped") is not None
        out = "\n".join(node.text or "" for node in case.iter("system-out"))
        found.append(Outcome(test, passed=not failed and not skipped, skipped=skipped and not failed,
                             ledgers=tuple(ledgers(out))))  # fmt: skip
    return found


# --- the runner ---------------------------------------------------------------------------------

_SPIN = """\
import os, sys, time
parent, end = int(sys.argv[1]), time.monotonic() + float(sys.argv[2])
while os.getppid() == parent and time.monotonic() < end:
    for _ in range(200_000):
        pass
"""


@contextlib.contextmanager
def contention(count: int, limit: float) -> Iterator[list[subprocess.Popen[bytes]]]:
    """``count`` processes spinning on the CPU while the block runs; all ended when it exits."""
    spinners = [
        subprocess.Popen([sys.executable, "-c", _SPIN, str(os.getpid()), str(limit)], stdin=subprocess.DEVNULL)
        for _ in range(count)
    ]
    try:
        yield spinners
    finally:
        for spinner in spinners:
            spinner.kill()
        for spinner in spinners:
            spinner.wait(10)


def _targets(args: Sequence[str]) -> list[str]:
    """The fault suite unless the arguments name test files or ids themselves."""
    named = [a for a in args if not a.startswith("-") and Path(a.split("::")[0]).exists()]
    return [] if named else ["tests/faults"]


def _interrupted(signum: int, _frame: FrameType | None) -> None:
    # Raised in the main thread: the `finally` blocks end the spinners and the servers we started.
    raise SystemExit(128 + signum)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="scripts/dev faults",
        allow_abbrev=False,
        description="Run the fault suite (tests/faults) N times, optionally under CPU contention, and "
        "print per test: runs, passed, failed, and the LEDGER figures added up. Other arguments go to "
        "pytest (-k EXPR, test ids).",
    )
    parser.add_argument("--repeat", type=int, default=1, metavar="N", help="runs of the suite (default 1)")
    parser.add_argument("--contention", type=int, default=0, metavar="K", help="busy CPU processes beside it")
    parser.add_argument("--contention-limit", type=float, default=6 * 3600, metavar="SECONDS",
                        help="the longest a busy process lives even if this runner is stuck (default 6 h)")  # fmt: skip
    parser.add_argument(
        "--out", type=Path, default=None, help="where the runs' logs and XML go (default: a new temp dir)"
    )
    args, pytest_args = parser.parse_known_args(argv)
    if args.repeat < 1 or args.contention < 0:
        parser.error("--repeat must be at least 1 and --contention at least 0")
    out: Path = args.out or Path(tempfile.mkdtemp(prefix="faults-"))
    out.mkdir(parents=True, exist_ok=True)
    for sig in (signal.SIGTERM, signal.SIGHUP):
        signal.signal(sig, _interrupted)

    from devstack import stack  # not at import: the unit tests of the parsing need no stack

    everything = stack.select([], every=True)
    running = {name for name, state, _ in stack.status(everything) if state.startswith("ready")}
    outcomes: list[Outcome] = []
    codes: list[int] = []
    started = time.monotonic()
    try:
        with contention(args.contention, args.contention_limit):
            for run in range(1, args.repeat + 1):
                xml = out / f"run-{run}.xml"
                argv_run = [
                    *(sys.executable, "-m", "pytest", *_targets(pytest_args), "-p", "no:cacheprovider", "-q"),
                    *("--keep-stack", f"--junitxml={xml}", "-o", "junit_logging=system-out", *pytest_args),
                ]
                print(
                    f"==> run {run}/{args.repeat} (contention {args.contention}): {' '.join(argv_run[3:])}", flush=True
                )
                run_started = time.monotonic()
                with (out / f"run-{run}.log").open("wb") as log:
                    code = _tee(argv_run, log)
                codes.append(code)
                found = junit_outcomes(xml) if xml.is_file() else []
                outcomes += found
                print(f"==> run {run}: exit {code}, {sum(o.passed for o in found)} passed, "
                      f"{sum(not o.passed and not o.skipped for o in found)} failed in "
                      f"{time.monotonic() - run_started:.0f}s", flush=True)  # fmt: skip
    finally:
        # Servers the runs started (they keep them between runs) are stopped; those running before stay.
        stack.down([s for s in everything if s.name not in running])
    print(f"\n{args.repeat} run(s) in {time.monotonic() - started:.0f}s, contention {args.contention}; logs in {out}")
    print(table(aggregate(outcomes)))
    no_tests = not outcomes
    return 1 if no_tests or any(code != 0 for code in codes) else 0


def _tee(argv: Sequence[str], log: BinaryIO) -> int:
    """Run ``argv``, its output both on our stdout and in ``log``."""
    proc = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
    stdout = proc.stdout
    assert stdout is not None
    try:
        for chunk in iter(stdout.readline, b""):
            sys.stdout.buffer.write(chunk)
            sys.stdout.flush()
            log.write(chunk)
        return proc.wait()
    finally:
        if proc.poll() is None:
            proc.terminate()
            with contextlib.suppress(subprocess.TimeoutExpired):
                proc.wait(60)
            if proc.poll() is None:
                proc.kill()
                proc.wait()


if __name__ == "__main__":
    sys.exit(main())
