"""Oversized Events are cut to fit, keep their identity, and say so."""

from __future__ import annotations

import hashlib
import json
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from streams.core import events
from streams.ingest.truncate import SUFFIX, fit

LIMIT = 64 * 1024


def big_event(message_bytes: int, annotation_bytes: int = 0) -> dict[str, Any]:
    return {
        "kind": "Event",
        "apiVersion": "v1",
        "metadata": {
            "uid": "u-1",
            "resourceVersion": "123",
            "name": "pod.1",
            "namespace": "default",
            "annotations": {"big": "a" * annotation_bytes, "small": "keep"},
            "managedFields": [{"manager": "x" * 1000}],
        },
        "reason": "Failed",
        "type": "Warning",
        "involvedObject": {"kind": "Pod", "name": "pod", "namespace": "default"},
        "message": "m" * message_bytes,
        "count": 3,
    }


def test_an_event_that_fits_is_sent_as_is() -> None:
    e = big_event(1000)
    fitted = fit(e, LIMIT)
    assert fitted.marker is None
    assert fitted.value == events.encode_raw(e)


def test_the_message_is_cut_first_and_the_event_is_marked() -> None:
    e = big_event(100_000, annotation_bytes=10_000)
    original = events.encode_raw(e)
    fitted = fit(e, LIMIT)
    assert len(fitted.value) <= LIMIT
    doc = json.loads(fitted.value)
    assert doc["message"].endswith(SUFFIX) and len(doc["message"]) > 40_000
    assert doc["metadata"]["annotations"]["big"] == "a" * 10_000  # untouched: cutting the message was enough
    assert doc["truncated"] == {
        "originalBytes": len(original),
        "sha256": hashlib.sha256(original).hexdigest(),
        "fields": ["message"],
    }
    assert "managedFields" not in doc["metadata"]
    assert events.identity(doc) == ("u-1", "123") and doc["reason"] == "Failed" and doc["count"] == 3


def test_then_the_largest_other_strings() -> None:
    e = big_event(1000, annotation_bytes=200_000)
    doc = json.loads(fit(e, LIMIT).value)
    assert doc["truncated"]["fields"] == ["metadata.annotations.big"]
    assert doc["metadata"]["annotations"]["small"] == "keep"
    assert doc["message"] == "m" * 1000


def test_escaped_characters_count_at_their_escaped_size() -> None:
    e = big_event(0)
    e["message"] = '\u00e9\u4e2d\n"' * 20_000  # ~7 bytes of UTF-8, up to 14 escaped, per repeat
    fitted = fit(e, LIMIT)
    doc = json.loads(fitted.value)
    assert len(json.dumps(doc, ensure_ascii=True, separators=(",", ":"))) <= LIMIT
    assert doc["truncated"]["fields"] == ["message"]


json_leaf = st.one_of(st.none(), st.booleans(), st.integers(), st.text(max_size=3000))
json_values = st.recursive(
    json_leaf,
    lambda children: st.lists(children, max_size=8) | st.dictionaries(st.text(max_size=20), children, max_size=8),
    max_leaves=60,
)


@settings(max_examples=60, deadline=None)
@given(
    uid=st.text(min_size=1, max_size=64),
    rv=st.from_regex(r"\A[0-9]{1,12}\Z"),
    extra=st.dictionaries(st.text(max_size=20), json_values, max_size=6),
    message=st.text(max_size=20_000),
    blob=st.integers(min_value=0, max_value=200_000),
)
def test_any_event_fits_after_truncation_and_keeps_its_identity(
    uid: str, rv: str, extra: dict[str, Any], message: str, blob: int
) -> None:
    e: dict[str, Any] = {**extra, "metadata": {"uid": uid, "resourceVersion": rv, "labels": {"x": "y" * blob}}}
    e["message"] = message
    limit = 16 * 1024
    fitted = fit(e, limit)
    assert len(fitted.value) <= limit
    doc = json.loads(fitted.value)
    assert events.identity(doc) == (uid, rv)
    if fitted.marker is not None:
        assert doc["truncated"]["originalBytes"] == len(events.encode_raw(e))
    else:
        assert fitted.value == events.encode_raw(e)


def test_the_record_limit_is_a_setting_with_kafkas_default_and_a_sane_range() -> None:
    import pytest

    from streams.config.settings import Settings, SettingsError

    assert Settings.from_env({}).kafka.max_request_bytes == 1024 * 1024
    assert Settings.from_env({"K8SEV_KAFKA_MAX_REQUEST_BYTES": "2097152"}).kafka.max_request_bytes == 2 * 1024 * 1024
    with pytest.raises(SettingsError, match="K8SEV_KAFKA_MAX_REQUEST_BYTES='1000': '1000' must be between"):
        Settings.from_env({"K8SEV_KAFKA_MAX_REQUEST_BYTES": "1000"})
