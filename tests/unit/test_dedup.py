"""Dedup decisions: each version once, older ones dropped, occurrences counted from count growth."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from streams.dedup.decide import Seen, compare_versions, decide


def test_a_new_uid_is_delivered_with_its_own_count() -> None:
    decision = decide(None, "100", 3)
    assert decision.deliver and decision.occurrences == 3


def test_the_same_version_is_a_duplicate() -> None:
    decision = decide(Seen("100", 3), "100", 3)
    assert decision.verdict == "duplicate" and decision.occurrences == 0


def test_an_older_version_is_stale() -> None:
    assert decide(Seen("100", 3), "99", 2).verdict == "stale"


def test_a_newer_version_counts_the_growth() -> None:
    decision = decide(Seen("100", 3), "120", 5)
    assert decision.deliver and decision.occurrences == 2


def test_a_newer_version_whose_count_did_not_grow_adds_nothing() -> None:
    decision = decide(Seen("100", 3), "101", 3)
    assert decision.deliver and decision.occurrences == 0


def test_numeric_order_not_string_order() -> None:
    assert compare_versions("99", "100") == -1
    assert compare_versions("100", "99") == 1


def test_opaque_versions_only_compare_equal() -> None:
    assert compare_versions("abc", "abc") == 0
    assert compare_versions("abc", "abd") is None
    assert decide(Seen("abc", 1), "abd", 2).occurrences == 1


@given(st.lists(st.tuples(st.integers(1, 10_000), st.integers(1, 1000)), min_size=1, max_size=60))
def test_replays_in_any_order_deliver_each_version_once(versions: list[tuple[int, int]]) -> None:
    # An event's count never shrinks as its resourceVersion grows.
    ordered = sorted({rv: count for rv, count in versions}.items())
    counts = sorted(c for _, c in ordered)
    history = [(str(rv), count) for (rv, _), count in zip(ordered, counts, strict=True)]
    # Replay: every version up to three times, interleaved with older ones.
    stream = history + history[::-1] + history
    seen: Seen | None = None
    delivered: list[str] = []
    total = 0
    for rv, count in stream:
        decision = decide(seen, rv, count)
        if decision.deliver:
            delivered.append(rv)
            total += decision.occurrences
            seen = Seen(rv, count)
    assert delivered == [rv for rv, _ in history]
    assert total == history[-1][1]
