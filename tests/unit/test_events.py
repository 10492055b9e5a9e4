"""Event time, ids, index names, occurrence counts, decoding and the document."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta, timezone

import pytest
from hypothesis import given
from hypothesis import strategies as st

from streams.core import events

UTC_TIMES = st.datetimes(min_value=datetime(1971, 1, 1), max_value=datetime(2999, 12, 31), timezones=st.just(UTC))


def make_event(**overrides: object) -> dict[str, object]:
    event: dict[str, object] = {
        "kind": "Event",
        "apiVersion": "v1",
        "metadata": {
            "name": "nginx-6db489d4b7-vkbmj.163810f4ba6b4eeb",
            "namespace": "default",
            "uid": "873a9973-1e73-4f1d-96b3-3998d1e0faab",
            "resourceVersion": "563189",
            "creationTimestamp": "2020-09-25T15:38:30Z",
        },
        "involvedObject": {"kind": "Pod", "namespace": "default", "name": "nginx-6db489d4b7-vkbmj"},
        "reason": "Started",
        "message": "Started container nginx",
        "source": {"component": "kubelet", "host": "10.0.7.14"},
        "firstTimestamp": "2020-09-25T15:38:30Z",
        "lastTimestamp": "2020-09-25T15:38:30Z",
        "count": 1,
        "type": "Normal",
        "eventTime": None,
        "reportingComponent": "",
        "reportingInstance": "",
    }
    event.update(overrides)
    return event


@given(UTC_TIMES)
def test_parse_time_reads_what_the_api_server_writes(when: datetime) -> None:
    seconds = when.replace(microsecond=0)
    assert events.parse_time(seconds.strftime("%Y-%m-%dT%H:%M:%SZ")) == seconds
    # eventTime is MicroTime: six fraction digits.
    assert events.parse_time(when.strftime("%Y-%m-%dT%H:%M:%S.%fZ")) == when


@given(UTC_TIMES, st.integers(min_value=-14 * 60, max_value=14 * 60))
def test_parse_time_normalises_offsets_to_utc(when: datetime, offset_minutes: int) -> None:
    zone = timezone(timedelta(minutes=offset_minutes))
    local = when.replace(microsecond=0).astimezone(zone)
    assert events.parse_time(local.isoformat()) == when.replace(microsecond=0)


@given(st.one_of(st.none(), st.integers(), st.text(), st.lists(st.text()), st.dictionaries(st.text(), st.text())))
def test_parse_time_never_raises(value: object) -> None:
    result = events.parse_time(value)
    assert result is None or result.tzinfo is UTC


def test_event_time_prefers_last_timestamp() -> None:
    event = make_event(lastTimestamp="2021-01-02T03:04:05Z", eventTime="2021-01-01T00:00:00.000001Z")
    assert events.event_time(event) == datetime(2021, 1, 2, 3, 4, 5, tzinfo=UTC)


def test_event_time_of_a_scheduler_event_comes_from_event_time() -> None:
    # events.k8s.io/v1 writers leave firstTimestamp and lastTimestamp null.
    event = make_event(lastTimestamp=None, firstTimestamp=None, eventTime="2024-05-06T07:08:09.123456Z")
    assert events.event_time(event) == datetime(2024, 5, 6, 7, 8, 9, 123456, tzinfo=UTC)


def test_event_time_of_a_series_uses_last_observed_time() -> None:
    event = make_event(
        lastTimestamp=None,
        firstTimestamp=None,
        eventTime="2024-05-06T07:00:00.000000Z",
        series={"count": 7, "lastObservedTime": "2024-05-06T07:30:00.000000Z"},
    )
    assert events.event_time(event) == datetime(2024, 5, 6, 7, 30, tzinfo=UTC)


def test_event_time_falls_back_to_creation_timestamp() -> None:
    event = make_event(lastTimestamp=None, firstTimestamp=None, eventTime=None)
    assert events.event_time(event) == datetime(2020, 9, 25, 15, 38, 30, tzinfo=UTC)


def test_event_time_is_none_without_any_time() -> None:
    assert events.event_time({"metadata": {"uid": "u"}}) is None


def test_index_name_uses_the_utc_day() -> None:
    late_evening_east = datetime(2020, 9, 25, 23, 38, 30, tzinfo=timezone(timedelta(hours=8)))
    assert events.index_name("k8s-event", late_evening_east) == "k8s-event-2020.09.25"
    assert events.index_name("k8s-event", datetime(2020, 9, 25, 16, 0, tzinfo=UTC)) == "k8s-event-2020.09.25"


def test_doc_id_is_uid_and_resource_version() -> None:
    assert events.doc_id(make_event()) == "873a9973-1e73-4f1d-96b3-3998d1e0faab:563189"


@pytest.mark.parametrize(
    ("fields", "expected"),
    [
        ({"count": 5}, 5),
        ({"count": 0}, 1),
        ({"count": None}, 1),
        ({"count": True}, 1),
        ({"count": 1, "series": {"count": 9}}, 9),
        ({"count": 3, "series": None}, 3),
        ({"count": "7"}, 7),
        ({"count": 1, "series": {"count": "12"}}, 12),
        ({"count": -4}, 1),
        ({"count": 7.0}, 1),
        ({"count": "7.5"}, 1),
        ({"count": "-7"}, 1),
        ({"count": " 7"}, 1),
        ({"count": "seven"}, 1),
        ({"count": 2**63}, 1),
        ({"count": str(2**63)}, 1),
        ({"count": 4, "series": {"count": "x"}}, 4),
        ({"count": 4, "series": {"count": -1}}, 4),
    ],
)
def test_occurrence_count(fields: dict[str, object], expected: int) -> None:
    assert events.occurrence_count(make_event(**fields)) == expected


COUNT_VALUES = st.one_of(
    st.integers(), st.integers(0, 10**20).map(str), st.text(max_size=6), st.floats(), st.booleans(), st.none(),
    st.lists(st.integers(), max_size=2),
)  # fmt: skip


@given(COUNT_VALUES, st.one_of(st.none(), st.fixed_dictionaries({"count": COUNT_VALUES})))
def test_the_document_says_what_the_counts_count(count: object, series: object) -> None:
    """Whatever ``count`` and ``series.count`` hold, the document's numbers are the counted ones."""
    event = make_event(count=count, series=series)
    doc = events.to_document(event, "c", datetime(2020, 1, 1, tzinfo=UTC))
    counted = events.occurrence_count(event)
    shown = [doc["series"]["count"] if series else None, doc["count"]]
    for value in shown:
        # What the index maps as long: a whole number in range, or null.
        assert value is None or (type(value) is int and 0 <= value <= events.MAX_COUNT)
    assert counted == next((value for value in shown if value), 1)


def test_a_digit_string_count_is_indexed_as_its_number_and_junk_as_null() -> None:
    when = datetime(2020, 1, 1, tzinfo=UTC)
    doc = events.to_document(make_event(count="7", series={"count": "x", "lastObservedTime": None}), "c", when)
    assert (doc["count"], doc["series"]) == (7, {"count": None, "lastObservedTime": None})
    assert "count" not in events.to_document({"metadata": {}}, "c", when)


@pytest.mark.parametrize(
    ("raw", "reason"),
    [
        (b"[" * 50_000 + b"]" * 50_000, "too_deep"),
        (b'{"a":' * 5000 + b"1" + b"}" * 5000, "too_deep"),
        (
            json.dumps(make_event(message=[[[[["x"]]]]])).replace('"x"', "[" * 200 + "1" + "]" * 200).encode(),
            "too_deep",
        ),
        (b'{"metadata":{"uid":"u","resourceVersion":"1"},"count":NaN}', "invalid_json"),
        (b'{"metadata":{"uid":"u","resourceVersion":"1"},"count":-Infinity}', "invalid_json"),
        (b'{"metadata":{"uid":"u","resourceVersion":"1"},"count":1e999}', "invalid_json"),
    ],
)
def test_decode_refuses_what_would_break_a_serializer_later(raw: bytes, reason: str) -> None:
    with pytest.raises(events.RejectedRecord) as caught:
        events.decode(raw)
    assert caught.value.reason == reason


def test_decode_takes_nesting_up_to_the_limit() -> None:
    value = make_event(message="x")
    text = json.dumps(value).replace('"x"', "[" * (events.MAX_DEPTH - 1) + "1" + "]" * (events.MAX_DEPTH - 1))
    assert events.decode(text.encode())["metadata"] == value["metadata"]


def test_decode_accepts_an_event() -> None:
    raw = json.dumps(make_event()).encode()
    assert events.decode(raw) == make_event()


@pytest.mark.parametrize(
    ("raw", "reason"),
    [
        (None, "empty"),
        (b"\xff\xfe{}", "invalid_utf8"),
        (b'{"metadata": {"uid": "a"', "invalid_json"),
        (b"[1, 2]", "not_an_object"),
        (b'{"metadata": {"resourceVersion": "1"}}', "missing_uid"),
        (b'{"metadata": {"uid": "", "resourceVersion": "1"}}', "missing_uid"),
        (b'{"metadata": {"uid": "u"}}', "missing_resource_version"),
        (b'{"metadata": "nope"}', "missing_uid"),
        (b"x" * (events.MAX_RECORD_BYTES + 1), "too_large"),
    ],
)
def test_decode_rejects_with_a_stable_reason(raw: bytes | None, reason: str) -> None:
    with pytest.raises(events.RejectedRecord) as caught:
        events.decode(raw)
    assert caught.value.reason == reason


@given(st.binary(max_size=2000))
def test_decode_of_any_bytes_returns_an_event_or_rejects(raw: bytes) -> None:
    try:
        event = events.decode(raw)
    except events.RejectedRecord as exc:
        assert exc.reason in {
            "empty", "too_large", "invalid_utf8", "invalid_json", "not_an_object",
            "missing_uid", "missing_resource_version",
        }  # fmt: skip
    else:
        assert all(events.identity(event))


JSON_LEAVES = st.one_of(st.none(), st.booleans(), st.integers(), st.floats(allow_nan=False), st.text())
JSON = st.recursive(JSON_LEAVES, lambda inner: st.lists(inner) | st.dictionaries(st.text(), inner), max_leaves=20)


@given(
    message=st.text(max_size=5000),
    reason=st.text(max_size=50),
    extra=st.dictionaries(st.text(min_size=1).filter(lambda k: k not in ("metadata", "@timestamp", "cluster")), JSON),
    when=UTC_TIMES,
)
def test_document_is_the_event_plus_timestamp_and_cluster(
    message: str, reason: str, extra: dict[str, object], when: datetime
) -> None:
    event = make_event(message=message, reason=reason, **extra)
    event["metadata"] = {**event["metadata"], "managedFields": [{"manager": "kubelet"}]}  # type: ignore[dict-item]
    doc = events.to_document(event, "prod-eu", when)
    assert doc["cluster"] == "prod-eu"
    assert events.parse_time(doc["@timestamp"]) == when.replace(microsecond=when.microsecond // 1000 * 1000)
    assert "managedFields" not in doc["metadata"]
    without_added = {k: v for k, v in doc.items() if k not in ("@timestamp", "cluster")}
    assert without_added == events.strip_managed_fields(event)
    # Round-trips through JSON unchanged: unicode and huge messages survive.
    assert json.loads(json.dumps(doc, ensure_ascii=False)) == doc


def test_summary_of_a_cluster_scoped_event() -> None:
    event = make_event(metadata={"uid": "u", "resourceVersion": "1"}, involvedObject={"kind": "Node", "name": "n1"})
    summary = events.summary(event)
    assert (summary.namespace, summary.kind, summary.type, summary.reason) == ("_cluster", "Node", "Normal", "Started")
