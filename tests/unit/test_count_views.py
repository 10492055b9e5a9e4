"""The count views without a web server (streams.counts.views): parameters, window arithmetic, filters, answers."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from streams.counts import views
from streams.counts.windows import kind_key, partition_key, reason_key

MINUTE_START = 1_700_000_040.0  # a minute boundary


def asked(label: str = "1m", top: int = 10, start: float = MINUTE_START) -> views.WindowQuery:
    size = 60.0 if label == "1m" else 3600.0
    return views.WindowQuery(label, start, start + size, top)


@pytest.mark.parametrize(
    ("params", "message"),
    [
        ({"window": "1d"}, "window must be one of 1m, 1h"),
        ({"ago": "-1"}, "ago must be a whole number"),
        ({"ago": str(views.MAX_AGO + 1)}, "ago must be a whole number"),
        ({"top": "0"}, f"top must be between 1 and {views.MAX_TOP}"),
        ({"top": str(views.MAX_TOP + 1)}, "top must be between"),
        ({"top": "ten"}, "top must be between"),
    ],
)
def test_bad_parameters_are_refused_with_what_is_allowed(params: dict[str, str], message: str) -> None:
    with pytest.raises(views.BadRequest, match=message):
        views.query(params)


def test_defaults_are_the_current_minute_and_the_top_ten() -> None:
    assert views.window({}) == ("1m", 0)
    assert views.top({}) == 10
    q = views.query({})
    assert q.label == "1m" and q.top == 10 and q.end - q.start == 60


def test_window_range_counts_back_whole_windows_from_the_current_one() -> None:
    now = MINUTE_START + 59.5
    assert views.window_range("1m", 0, now) == (MINUTE_START, MINUTE_START + 60)
    assert views.window_range("1m", 2, now) == (MINUTE_START - 120, MINUTE_START - 60)
    start, end = views.window_range("1h", 0, now)
    assert start % 3600 == 0 and start <= now < end == start + 3600


@given(st.floats(min_value=0, max_value=4e9), st.integers(min_value=0, max_value=views.MAX_AGO))
def test_window_range_is_aligned_and_holds_now_when_ago_is_zero(now: float, ago: int) -> None:
    start, end = views.window_range("1m", ago, now)
    assert start % 60 == 0 and end - start == 60
    if ago == 0:
        assert start <= now < end


def test_local_counts_take_only_the_window_asked_and_the_partitions_owned() -> None:
    entries: list[tuple[Any, Any]] = [
        ((partition_key(0, "ns/Warning/BackOff"), (MINUTE_START, MINUTE_START + 60)), 3),
        ((partition_key(1, "ns/Warning/BackOff"), (MINUTE_START, MINUTE_START + 60)), 4),
        ((partition_key(2, "ns/Warning/BackOff"), (MINUTE_START, MINUTE_START + 60)), 100),  # a standby copy
        ((partition_key(0, "ns/Normal/Pulled"), (MINUTE_START - 60, MINUTE_START)), 9),  # the minute before
        ((partition_key(0, "ns/Normal/Pulled"), (MINUTE_START, MINUTE_START + 60)), 0),  # nothing counted
    ]
    owned = {0, 1}.__contains__
    assert views.local_counts(entries, MINUTE_START, owned) == {"ns/Warning/BackOff": 7}


COUNTS = {
    reason_key("a", "Warning", "BackOff"): 5,
    reason_key("a", "Normal", "Pulled"): 2,
    reason_key("b", "Warning", "BackOff"): 5,
    reason_key("b", "Warning", "Failed"): 1,
}


def test_reasons_merge_namespaces_and_rank_ties_by_name() -> None:
    body = views.reasons(asked(top=2), {}, dict(COUNTS), [])
    assert body["total"] == 13 and body["partial"] == []
    assert body["reasons"] == [
        {"type": "Warning", "reason": "BackOff", "count": 10},
        {"type": "Normal", "reason": "Pulled", "count": 2},
    ]
    assert body["namespaces"] == [{"namespace": "a", "count": 7}, {"namespace": "b", "count": 6}]
    assert body["window"] == "1m" and body["start"] == "2023-11-14T22:14:00Z" and body["end"] == "2023-11-14T22:15:00Z"


def test_reasons_filter_by_namespace_and_type_and_say_which_peers_failed() -> None:
    body = views.reasons(asked(), {"namespace": "b", "type": "Warning"}, dict(COUNTS), ["http://peer:6066"])
    assert body["filters"] == {"namespace": "b", "type": "Warning"}
    assert body["total"] == 6 and body["partial"] == ["http://peer:6066"]
    assert [r["reason"] for r in body["reasons"]] == ["BackOff", "Failed"]


def test_the_raw_answer_is_the_selected_counts_for_a_peer_to_merge() -> None:
    assert views.reasons(asked(), {"raw": "1", "namespace": "a"}, dict(COUNTS), []) == {
        "counts": {reason_key("a", "Warning", "BackOff"): 5, reason_key("a", "Normal", "Pulled"): 2},
        "partial": [],
    }
    kinds = {kind_key("Pod", "BackOff"): 4, kind_key("Node", "NodeReady"): 1}
    assert views.kinds(asked(), {"raw": "1", "kind": "Pod"}, kinds, []) == {"counts": {kind_key("Pod", "BackOff"): 4}}


def test_kinds_rank_kind_and_reason_pairs_and_filter_by_kind() -> None:
    counts = {kind_key("Pod", "BackOff"): 4, kind_key("Pod", "Pulled"): 4, kind_key("Node", "NodeReady"): 9}
    body = views.kinds(asked(top=2), {}, counts, [])
    assert body["kinds"] == [
        {"kind": "Node", "reason": "NodeReady", "count": 9},
        {"kind": "Pod", "reason": "BackOff", "count": 4},
    ]
    assert body["total"] == 17
    only_pods = views.kinds(asked(), {"kind": "Pod"}, counts, [])
    assert only_pods["filters"] == {"kind": "Pod"} and only_pods["total"] == 8


# ---------------------------------------------------------------- the namespace filter (kubernetes auth)

REASON_COUNTS = {
    reason_key("team-a", "Warning", "BackOff"): 5,
    reason_key("team-b", "Warning", "BackOff"): 7,
    reason_key("", "Normal", "NodeReady"): 2,  # a Node's events: cluster-scoped
}


def test_the_namespaces_a_reason_table_holds() -> None:
    assert views.namespaces(REASON_COUNTS) == {"team-a", "team-b", ""}
    assert views.namespaces({}) == set()


def test_within_keeps_only_the_allowed_namespaces_and_never_cluster_scoped_keys() -> None:
    assert views.within(REASON_COUNTS, "reason", {"team-a"}) == {"team-a/Warning/BackOff": 5}
    assert views.within(REASON_COUNTS, "reason", {"team-a", "team-b", ""}) == {
        "team-a/Warning/BackOff": 5,
        "team-b/Warning/BackOff": 7,
    }
    assert views.within(REASON_COUNTS, "reason", frozenset()) == {}


def test_within_none_is_everything_cluster_scoped_included() -> None:
    assert views.within(REASON_COUNTS, "reason", None) == REASON_COUNTS
    kinds = {kind_key("Pod", "BackOff"): 3}
    assert views.within(kinds, "kind", None) == kinds


def test_kind_counts_name_no_namespace_so_a_limited_caller_keeps_none() -> None:
    assert views.within({kind_key("Pod", "BackOff"): 3}, "kind", {"team-a"}) == {}


@given(
    st.dictionaries(
        st.tuples(st.sampled_from(["", "team-a", "team-b", "x"]), st.sampled_from(["Normal", "Warning"]), st.text()),
        st.integers(1, 10**6),
    ),
    st.frozensets(st.sampled_from(["", "team-a", "team-b", "x"])),
)
def test_within_is_the_allowed_namespaces_part_and_nothing_else(
    table: dict[tuple[str, str, str], int], allowed: frozenset[str]
) -> None:
    counts = {reason_key(*key): n for key, n in table.items()}
    kept = views.within(counts, "reason", allowed)
    assert kept == {k: n for k, n in counts.items() if k.split("/", 1)[0] in allowed - {""}}
    answer = views.reasons(asked(), {}, kept, [])
    assert {row["namespace"] for row in answer["namespaces"]} <= allowed - {""}
