"""The explorer's query parser and body builder: outside input in, engine bodies out."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from streams.explorer import query
from streams.explorer.query import QueryError

NOW = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)


def parse(**params: str) -> tuple[query.Filter, query.Page]:
    return query.parse_search(params, NOW)


def test_defaults_are_the_last_day_fifty_newest_first() -> None:
    search, page = parse()
    assert (search.range.start, search.range.end) == (NOW - timedelta(hours=24), NOW)
    assert page == query.Page(size=50, after=None)
    body = query.search_body(search, page)
    assert body["sort"][0] == {"@timestamp": {"order": "desc"}}
    assert body["track_total_hits"] is True
    assert "must" not in body["query"]["bool"]


@pytest.mark.parametrize(("preset", "hours"), [("1h", 1), ("24h", 24), ("7d", 168), ("30d", 720), ("90m", 1.5)])
def test_presets_and_durations(preset: str, hours: float) -> None:
    search, _ = parse(range=preset)
    assert search.range.end - search.range.start == timedelta(hours=hours)


def test_absolute_times_in_iso_or_epoch_milliseconds() -> None:
    search, _ = parse(**{"from": "2026-02-28T03:10:00Z", "to": str(int(NOW.timestamp() * 1000))})
    assert search.range.start == datetime(2026, 2, 28, 3, 10, tzinfo=UTC)
    assert search.range.end == NOW
    naive, _ = parse(**{"from": "2026-02-28T03:10:00"})
    assert naive.range.start.tzinfo is UTC and naive.range.end == NOW
    shifted, _ = parse(**{"from": "2026-02-28T05:10:00+02:00", "to": "2026-02-28T04:00:00Z"})
    assert shifted.range.start == datetime(2026, 2, 28, 3, 10, tzinfo=UTC)


@pytest.mark.parametrize(
    ("params", "says"),
    [
        ({"size": "0"}, "size"),
        ({"size": "501"}, "size"),
        ({"size": "ten"}, "size"),
        ({"type": "Error"}, "type"),
        ({"range": "forever"}, "range"),
        ({"range": "0h"}, "range"),
        ({"range": "500d"}, "range"),
        ({"range": "1h", "from": "2026-02-28T00:00:00Z"}, "not both"),
        ({"from": "2026-03-01T12:00:00Z", "to": "2026-03-01T11:00:00Z"}, "before"),
        ({"from": "yesterday"}, "from"),
        ({"from": "2020-01-01T00:00:00Z"}, "400 days"),
        ({"after": "!!!"}, "after"),
        ({"after": query.encode_cursor(["x", "y", "z"])}, "after"),
        ({"after": query.encode_cursor([True, "y", "z"])}, "after"),
        ({"q": "x" * 501}, "q"),
        ({"name": "x" * 254}, "name"),
        ({"name": "a\nb"}, "control"),
        ({"size": "10", "sort": "asc"}, "unknown parameter"),
    ],
)
def test_bad_parameters_say_which_and_why(params: dict[str, str], says: str) -> None:
    with pytest.raises(QueryError, match=says):
        query.parse_search(params, NOW)


def test_filters_become_term_clauses_on_the_mapped_fields() -> None:
    search, _ = parse(cluster="prod", namespace="a,b", kind="Pod", name="web-1", type="Warning", reason="BackOff")
    clauses = query.filter_clauses(search)
    assert {"terms": {"cluster": ["prod"]}} in clauses
    assert {"terms": {"metadata.namespace": ["a", "b"]}} in clauses
    assert {"terms": {"involvedObject.kind": ["Pod"]}} in clauses
    assert {"term": {"involvedObject.name": "web-1"}} in clauses
    assert {"terms": {"type": ["Warning"]}} in clauses
    assert {"terms": {"reason": ["BackOff"]}} in clauses


def test_component_matches_either_field_kubernetes_writes_it_in() -> None:
    search, _ = parse(component="kubelet")
    either = query.filter_clauses(search)[-1]["bool"]
    assert either["minimum_should_match"] == 1
    assert {"terms": {"reportingComponent": ["kubelet"]}} in either["should"]
    assert {"terms": {"source.component": ["kubelet"]}} in either["should"]


def test_free_text_covers_message_reason_and_name_and_a_word_finds_name_prefixes() -> None:
    search, _ = parse(q="web")
    must = query.query_clause(search)["bool"]["must"][0]["bool"]["should"]
    assert must[0]["simple_query_string"]["fields"] == ["message", "reason", "involvedObject.name"]
    assert must[1] == {"prefix": {"involvedObject.name": {"value": "web"}}}
    two, _ = parse(q="back off")
    assert len(query.query_clause(two)["bool"]["must"][0]["bool"]["should"]) == 1


def test_a_cursor_round_trips_into_search_after() -> None:
    sort = [1772366400000, "4f6e-11", "12345"]
    _, page = parse(after=query.encode_cursor(sort), size="500")
    body = query.search_body(parse()[0], page)
    assert body["search_after"] == sort
    assert body["size"] == 500


def test_the_next_cursor_is_given_only_for_a_full_page() -> None:
    hits = [{"_id": f"u{i}:1", "_source": {}, "sort": [i, f"u{i}", "1"]} for i in range(3)]
    full = query.search_answer({"hits": {"hits": hits, "total": {"value": 9, "relation": "eq"}}}, query.Page(size=3))
    assert query.decode_cursor(full["next"]) == (2, "u2", "1")
    assert full["total"] == 9
    short = query.search_answer({"hits": {"hits": hits, "total": {"value": 3}}}, query.Page(size=4))
    assert short["next"] is None


@pytest.mark.parametrize(
    ("span", "interval"),
    [(timedelta(hours=1), "30s"), (timedelta(hours=24), "30m"), (timedelta(days=7), "3h"), (timedelta(days=30), "6h")],
)
def test_histogram_has_at_most_120_bars(span: timedelta, interval: str) -> None:
    label, seconds = query.histogram_interval(span)
    assert label == interval
    assert span.total_seconds() / seconds <= query.HISTOGRAM_BARS


def test_histogram_body_splits_normal_and_warning_and_keeps_empty_buckets() -> None:
    search, _ = parse(range="1h")
    agg = query.histogram_body(search)["aggs"]["over_time"]
    assert agg["date_histogram"]["min_doc_count"] == 0
    assert agg["date_histogram"]["extended_bounds"] == {"min": search.range.start_ms, "max": search.range.end_ms}
    assert set(agg["aggs"]["types"]["filters"]["filters"]) == {"Normal", "Warning"}
    response = {
        "aggregations": {
            "over_time": {
                "buckets": [
                    {"key": 60_000, "types": {"buckets": {"Normal": {"doc_count": 2}, "Warning": {"doc_count": 1}}}},
                    {"key": 90_000, "types": {"buckets": {"Normal": {"doc_count": 0}, "Warning": {"doc_count": 0}}}},
                ]
            }
        }
    }
    answer = query.histogram_answer(response, search)
    assert (answer.times, answer.normal, answer.warning) == ([60, 90], [2, 0], [1, 0])


@pytest.mark.parametrize(
    ("pod", "owners"),
    [
        (
            "web-7d9f8b6c4d-x2x9q",
            [(("ReplicaSet",), "web-7d9f8b6c4d", "web-7d9f8b6c4d-x2x9q"), (("Deployment",), "web", "web-7d9f8b6c4d")],
        ),
        ("node-exporter-8kz2w", [(("DaemonSet", "Job", "ReplicaSet"), "node-exporter", "node-exporter-8kz2w")]),
        ("db-0", [(("StatefulSet",), "db", "db-0")]),
        ("standalone", []),
    ],
)
def test_pod_owners_from_generated_names(pod: str, owners: list[tuple[tuple[str, ...], str, str]]) -> None:
    assert [(o.kind, o.name, o.mentions) for o in query.pod_owners(pod)] == owners


def test_timeline_of_a_pod_with_owners_takes_only_owner_events_that_name_it() -> None:
    timeline = query.parse_timeline(
        {"kind": "Pod", "name": "web-7d9f8b6c4d-x2x9q", "namespace": "demo", "owners": "1"}, NOW
    )
    body = query.timeline_body(timeline)
    outer = body["query"]["bool"]["filter"]
    assert {"term": {"involvedObject.namespace": "demo"}} in outer
    about = outer[-1]["bool"]["should"]
    assert len(about) == 4
    assert {"match_phrase": {"message": "web-7d9f8b6c4d-x2x9q"}} in about[1]["bool"]["filter"]
    assert about[-1] == {"term": {"involvedObjectMeta.ownerRefs": "Pod/web-7d9f8b6c4d-x2x9q"}}
    assert body["sort"][0] == {"@timestamp": {"order": "asc"}}
    without = query.parse_timeline({"kind": "Deployment", "name": "web", "owners": "1"}, NOW)
    assert without.owners == ()


def test_timeline_follows_the_write_order_and_shows_count_growth() -> None:
    def hit(rv: str, stamp: str, uid: str, count: int) -> dict[str, Any]:
        source = {"@timestamp": stamp, "metadata": {"uid": uid}, "count": count}
        return {"_id": f"{uid}:{rv}", "_source": source}

    hits = [
        hit("295", "2026-03-01T07:17:04.000Z", "b", 1),  # whole-second lastTimestamp
        hit("291", "2026-03-01T07:17:04.020Z", "a", 1),  # microsecond eventTime, written first
        hit("300", "2026-03-01T07:17:09.000Z", "b", 4),
        # Written after b:300 but stamped in an earlier second: the time decides.
        hit("302", "2026-03-01T07:17:08.000Z", "c", 1),
        # Written before the precise event it follows, stamped in the same second (kwok's Started,
        # the scheduler's Scheduled at .900): the whole second counts as its end.
        hit("280", "2026-03-01T07:17:10.000Z", "started", 1),
        hit("285", "2026-03-01T07:17:10.900Z", "scheduled", 1),
    ]
    rows = query.timeline_rows({"hits": {"hits": hits}})
    assert [r["id"] for r in rows] == ["a:291", "b:295", "c:302", "b:300", "scheduled:285", "started:280"]
    assert [r["growth"] for r in rows] == [1, 1, 1, 3, 1, 1]


def test_row_reads_old_and_new_event_shapes() -> None:
    new = query.row({"_source": {"series": {"count": 7}, "reportingComponent": "scheduler", "type": "Normal"}})
    old = query.row({"_source": {"count": 3, "source": {"component": "kubelet", "host": "n1"}}})
    assert (new["count"], new["component"]) == (7, "scheduler")
    assert (old["count"], old["component"], old["host"]) == (3, "kubelet", "n1")
    assert query.row({})["count"] == 1


# ---------------------------------------------------------------- properties

_text = st.text(max_size=40)
_params = st.dictionaries(
    st.sampled_from(sorted(query.SEARCH_PARAMS | {"other", "p"})),
    _text | st.sampled_from(["1h", "7d", "Normal", "Warning,Normal", "50", "2026-02-28T00:00:00Z", "1772000000000"]),
    max_size=8,
)


@given(_params)
def test_any_input_parses_or_raises_query_error_and_builds_json(params: dict[str, str]) -> None:
    try:
        search, page = query.parse_search(params, NOW)
    except QueryError as exc:
        assert str(exc)
        return
    assert search.range.start < search.range.end
    assert 1 <= page.size <= query.MAX_SIZE
    assert set(search.types) <= set(query.TYPES)
    json.dumps(query.search_body(search, page))
    json.dumps(query.histogram_body(search))


@given(st.integers(min_value=0, max_value=2**53), st.text(max_size=80), st.text(max_size=30))
def test_cursors_round_trip(stamp: int, uid: str, rv: str) -> None:
    token = query.encode_cursor([stamp, uid, rv])
    assert token.isascii() and "=" not in token and "/" not in token and "+" not in token
    assert query.decode_cursor(token) == (stamp, uid, rv)


@given(st.text(max_size=200))
def test_any_cursor_text_decodes_or_raises_query_error(token: str) -> None:
    try:
        stamp, uid, rv = query.decode_cursor(token)
    except QueryError:
        return
    assert isinstance(stamp, int) and isinstance(uid, str) and isinstance(rv, str)


@given(st.text(max_size=60))
def test_any_time_text_parses_to_utc_or_raises_query_error(text: str) -> None:
    try:
        stamp = query.parse_time(text, "from")
    except QueryError:
        return
    assert stamp.tzinfo is UTC


@given(st.from_regex(r"[a-z0-9]([a-z0-9-]{0,40}[a-z0-9])?", fullmatch=True))
def test_owner_guesses_never_name_the_pod_itself_and_stay_few(pod: str) -> None:
    owners = query.pod_owners(pod)
    assert len(owners) <= 3
    assert all(o.name != pod and pod.startswith(o.name) for o in owners)


# ---------------------------------------------------------------- enrichment: owners and labels


def test_a_label_selector_becomes_terms_over_the_recorded_labels() -> None:
    search, _ = query.parse_search({"labels": "app=web, tier!=db,env in (a, b),env notin (c),!canary,team"}, NOW)
    clauses = query.filter_clauses(search)
    field = "involvedObjectMeta.labels"
    assert {"terms": {field: ["app=web"]}} in clauses
    assert {"bool": {"must_not": [{"terms": {field: ["tier=db"]}}]}} in clauses
    assert {"terms": {field: ["env=a", "env=b"]}} in clauses
    assert {"bool": {"must_not": [{"terms": {field: ["env=c"]}}]}} in clauses
    assert {"bool": {"must_not": [{"prefix": {field: {"value": "canary="}}}]}} in clauses
    assert {"prefix": {field: {"value": "team="}}} in clauses
    assert query.parse_selector("app==web") == (query.Requirement("app", "in", ("web",)),)
    assert query.parse_selector("app.kubernetes.io/name=web")[0].key == "app.kubernetes.io/name"


@pytest.mark.parametrize("bad", ["app=(web", "=web", "env in ()", "a b", "env in (a", "!", "app=web=x"])
def test_a_bad_selector_is_a_400_naming_the_term(bad: str) -> None:
    with pytest.raises(QueryError, match="labels"):
        query.parse_search({"labels": bad}, NOW)


@given(st.text(max_size=80))
def test_any_selector_text_parses_or_is_refused_cleanly(text: str) -> None:
    try:
        requirements = query.parse_selector(text)
    except QueryError:
        return
    for requirement in requirements:
        assert requirement.key and requirement.op in ("in", "notin", "exists", "absent")
        json.dumps(query.selector_clause(requirement))


def test_owner_finds_the_object_its_recorded_descendants_and_guesses_only_for_unenriched_documents() -> None:
    search, _ = query.parse_search({"owner": "Deployment/web"}, NOW)
    (owned,) = [c for c in query.filter_clauses(search) if "bool" in c and "should" in c["bool"]]
    either = owned["bool"]["should"]
    assert either[0] == {
        "bool": {"filter": [{"term": {"involvedObject.kind": "Deployment"}}, {"term": {"involvedObject.name": "web"}}]}
    }
    assert either[1] == {"term": {"involvedObjectMeta.ownerRefs": "Deployment/web"}}
    guesses = either[2:]
    assert [g["bool"]["filter"][0]["term"]["involvedObject.kind"] for g in guesses] == ["ReplicaSet", "Pod"]
    assert all(g["bool"]["must_not"] == [{"exists": {"field": "involvedObjectMeta"}}] for g in guesses)
    # The guess is a regular expression on the name: the name's own metacharacters are escaped.
    dotted, _ = query.parse_search({"owner": "StatefulSet/db.x"}, NOW)
    (clause,) = [c for c in query.filter_clauses(dotted) if "bool" in c and "should" in c["bool"]]
    assert clause["bool"]["should"][2]["bool"]["filter"][1]["regexp"]["involvedObject.name"]["value"].startswith(
        "db\\.x-"
    )
    # A kind with no known naming has no guess.
    (widget,) = [
        c
        for c in query.filter_clauses(query.parse_search({"owner": "Widget/w"}, NOW)[0])
        if "bool" in c and "should" in c["bool"]
    ]
    assert len(widget["bool"]["should"]) == 2
    for bad in ("web", "deployment/web", "Deployment/", "Deployment/a/b"):
        with pytest.raises(QueryError, match="owner"):
            query.parse_search({"owner": bad}, NOW)


def test_a_pods_recorded_owner_chain_replaces_the_name_guess() -> None:
    timeline = query.parse_timeline({"kind": "Pod", "name": "web-1", "namespace": "demo", "owners": "1"}, NOW)
    body = query.recorded_owners_body(timeline)
    assert {"exists": {"field": "involvedObjectMeta.owners"}} in body["query"]["bool"]["filter"]
    chain = [{"kind": "ReplicaSet", "name": "web-5d9", "uid": "r"}, {"kind": "Deployment", "name": "web", "uid": "d"}]
    answer = {"hits": {"hits": [{"_source": {"involvedObjectMeta": {"owners": chain}}}]}}
    assert query.recorded_owners("web-5d9-abcde", answer) == (
        query.Owner(("ReplicaSet",), "web-5d9", "web-5d9-abcde"),
        query.Owner(("Deployment",), "web", "web-5d9"),
    )
    assert query.recorded_owners("p", {"hits": {"hits": []}}) is None


def test_rows_carry_the_recorded_owner_chain() -> None:
    hit = {"_id": "u:1", "_source": {"involvedObjectMeta": {"ownerRefs": ["ReplicaSet/r", "Deployment/web"]}}}
    assert query.row(hit)["owners"] == ["ReplicaSet/r", "Deployment/web"]
    assert query.row({"_id": "u:1", "_source": {}})["owners"] == []
