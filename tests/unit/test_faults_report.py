"""The fault suite's report (devstack/faults.py): LEDGER lines written and read back, JUnit files of
real pytest runs read, and the figures added up per test."""

from __future__ import annotations

import math
import subprocess
import sys
from pathlib import Path

from hypothesis import given
from hypothesis import strategies as st

from devstack.faults import Ledger, Outcome, aggregate, junit_outcomes, ledger_line, ledgers, parse_ledger, table

keys = st.from_regex(r"[a-z_][a-z0-9_]{0,12}", fullmatch=True).filter(lambda k: k != "case")
words = st.text(st.characters(exclude_categories=["Cs"]), min_size=1, max_size=20).filter(lambda t: t.split() == [t])


@given(case=words, figures=st.dictionaries(keys, words, max_size=8))
def test_a_line_reads_back_as_written(case: str, figures: dict[str, str]) -> None:
    assert parse_ledger(ledger_line(case, figures)) == Ledger(case, figures)


@given(case=words, figures=st.dictionaries(keys, st.text(max_size=20), max_size=8))
def test_values_with_whitespace_become_one_token(case: str, figures: dict[str, str]) -> None:
    read = parse_ledger("prefix from pytest " + ledger_line(case, figures))
    assert read is not None
    assert read.figures == {k: "_".join(v.split()) or "-" for k, v in figures.items()}


@given(st.text(max_size=200))
def test_any_text_parses_to_a_ledger_or_to_none(text: str) -> None:
    found = parse_ledger(text)
    assert found is None or "LEDGER" in text.split()
    assert all(isinstance(item, Ledger) for item in ledgers(text))


def test_lines_that_are_no_ledger_are_none() -> None:
    assert parse_ledger("LEDGERS case=x") is None
    assert parse_ledger("LEDGER produced=3") is None  # no case
    assert parse_ledger("LEDGER case=x lost") is None  # a word that is no figure
    assert parse_ledger("LEDGER case=x Lost=1") is None
    assert parse_ledger("LEDGER case=lease_stolen stopped_after_s=1.2") == Ledger(
        "lease_stolen", {"stopped_after_s": "1.2"}
    )


def test_a_figure_name_that_would_not_read_back_is_refused() -> None:
    for bad in ("case", "Lost", "two words", "x=y", ""):
        try:
            ledger_line("c", {bad: 1})
        except ValueError:
            continue
        raise AssertionError(f"{bad!r} accepted")


def line(case: str, **figures: object) -> Ledger:
    found = parse_ledger(ledger_line(case, figures))
    assert found is not None
    return found


def test_figures_are_summed_per_test_and_the_worst_resume_kept() -> None:
    outcomes = [
        Outcome(
            "m::a", True, ledgers=(line("a", produced=300, lost=0, unexpected=0, resume_s=1.5, outcome="resumed"),)
        ),
        Outcome(
            "m::a",
            False,
            ledgers=(line("a", produced=310, lost=8, unexpected=0, resume_s="inf", outcome="relist_after_410"),),
        ),
        Outcome(
            "m::a", True, ledgers=(line("a", produced=305, lost=0, unexpected=1, resume_s=2.0, outcome="resumed"),)
        ),
        Outcome("m::b", False),  # an error before any LEDGER line
        Outcome("m::c", False, skipped=True),
    ]
    a, b = aggregate(outcomes)
    assert (a.test, a.runs, a.passed, a.failed) == ("m::a", 3, 2, 1)
    assert a.sums == {"produced": 915, "lost": 8, "unexpected": 1}
    assert a.worst_resume == math.inf
    assert a.values == {"outcome": {"resumed": 2, "relist_after_410": 1}}
    assert (b.runs, b.passed, b.failed, b.worst_resume) == (1, 0, 1, None)
    shown = table([a, b])
    assert shown.splitlines()[1].split() == ["m::a", "a", "3", "2", "1", "915", "8", "1", "inf"]
    assert shown.splitlines()[2].split() == ["m::b", "-", "1", "0", "1", "-", "-", "-", "-"]
    assert "m::a: outcome: relist_after_410 x1, resumed x2" in shown


def test_a_real_pytest_runs_junit_file_gives_outcomes_and_their_lines(tmp_path: Path) -> None:
    (tmp_path / "test_sample.py").write_text(
        "def test_passes():\n"
        "    print('\\nLEDGER case=one produced=3 lost=0 unexpected=0 resume_s=0.4')\n"
        "def test_fails():\n"
        "    print('\\nLEDGER case=two produced=5 lost=2 unexpected=0')\n"
        "    assert False\n"
        "def test_skips():\n"
        "    import pytest; pytest.skip('no')\n"
    )
    xml = tmp_path / "run.xml"
    subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", f"--junitxml={xml}",
         "-o", "junit_logging=system-out", "-o", "addopts=", str(tmp_path / "test_sample.py")],
        cwd=tmp_path, capture_output=True, check=False, timeout=120,
    )  # fmt: skip
    found = {o.test: o for o in junit_outcomes(xml)}
    assert set(found) == {"test_sample::test_passes", "test_sample::test_fails", "test_sample::test_skips"}
    assert found["test_sample::test_passes"].passed
    assert found["test_sample::test_passes"].ledgers == (
        Ledger("one", {"produced": "3", "lost": "0", "unexpected": "0", "resume_s": "0.4"}),
    )
    assert not found["test_sample::test_fails"].passed
    assert found["test_sample::test_fails"].ledgers[0].number("lost") == 2
    assert found["test_sample::test_skips"].skipped
