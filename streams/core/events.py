"""Pure functions over one Kubernetes Event (a core/v1 Event as a JSON dict).

Decoding raw topic records, the event's own time, document ids, daily index names, occurrence
counts and the Elasticsearch document. No I/O here: the agents, the Logstash pipeline's tests and
the benchmarks all rely on these giving the same answer for the same bytes.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

# The fields the event's time is taken from, most specific first. Events written through
# events.k8s.io/v1 (the scheduler's) leave lastTimestamp and firstTimestamp null and carry
# eventTime and series instead.
TIME_FIELDS: tuple[tuple[str, ...], ...] = (
    ("lastTimestamp",),
    ("series", "lastObservedTime"),
    ("eventTime",),
    ("firstTimestamp",),
    ("metadata", "creationTimestamp"),
)

# RFC 3339 as the API server writes it: seconds, optional fraction (micro for eventTime), Z or offset.
_RFC3339 = re.compile(r"^(\d{4})-(\d{2})-(\d{2})[Tt ](\d{2}):(\d{2}):(\d{2})(?:\.(\d{1,9}))?(Z|z|[+-]\d{2}:\d{2})$")

MAX_RECORD_BYTES = 1_000_000

#: Deepest nesting of objects and arrays a record may have. A Kubernetes Event nests about six
#: levels; the engines refuse mappings deeper than 20. Deeper input is refused here, before it can
#: exhaust the interpreter's recursion limit in a serializer further on.
MAX_DEPTH = 100

#: Largest count a document can carry: the index template maps ``count`` as a long.
MAX_COUNT = 2**63 - 1


class RejectedRecord(ValueError):
    """A raw record that cannot become a document; ``reason`` is a stable, bounded label."""

    def __init__(self, reason: str, detail: str) -> None:
        self.reason = reason
        self.detail = detail
        super().__init__(f"{reason}: {detail}")


def decode(raw: bytes | str | None) -> dict[str, Any]:
    """Parse one raw-topic value into an Event dict, or raise :class:`RejectedRecord`."""
    if raw is None:
        raise RejectedRecord("empty", "record has no value")
    if isinstance(raw, str):
        raw = raw.encode("utf-8", "surrogatepass")
    if len(raw) > MAX_RECORD_BYTES:
        raise RejectedRecord("too_large", f"{len(raw)} bytes, limit {MAX_RECORD_BYTES}")
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise RejectedRecord("invalid_utf8", str(exc)) from None
    try:
        event = json.loads(text, parse_constant=_no_constant, parse_float=_finite_float)
    except json.JSONDecodeError as exc:
        raise RejectedRecord("invalid_json", str(exc)) from None
    except RecursionError:
        raise RejectedRecord("too_deep", f"nested deeper than the decoder can follow (limit {MAX_DEPTH})") from None
    except _NotJson as exc:
        raise RejectedRecord("invalid_json", str(exc)) from None
    if not isinstance(event, dict):
        raise RejectedRecord("not_an_object", f"JSON {type(event).__name__}, expected an object")
    # Nesting deeper than the limit needs more opening brackets than the limit: a count in C first.
    if raw.count(b"{") + raw.count(b"[") > MAX_DEPTH and nesting_exceeds(event, MAX_DEPTH):
        raise RejectedRecord("too_deep", f"objects and arrays nested deeper than {MAX_DEPTH} levels")
    uid, resource_version = identity(event)
    if not uid:
        raise RejectedRecord("missing_uid", "metadata.uid is missing or empty")
    if not resource_version:
        raise RejectedRecord("missing_resource_version", "metadata.resourceVersion is missing or empty")
    return event


class _NotJson(ValueError):
    pass


def _no_constant(name: str) -> Any:
    # Python's decoder takes NaN and Infinity, which no search engine (nor strict JSON) accepts.
    raise _NotJson(f"{name} is not a JSON value")


def _finite_float(text: str) -> float:
    value = float(text)
    if value in (float("inf"), float("-inf")):
        raise _NotJson(f"number {text[:40]} is out of range")
    return value


def nesting_exceeds(value: Any, limit: int) -> bool:
    """Whether objects and arrays in ``value`` nest deeper than ``limit`` (iterative: no recursion)."""
    stack: list[tuple[Any, int]] = [(value, 1)]
    while stack:
        node, depth = stack.pop()
        if depth > limit:
            return True
        children = node.values() if isinstance(node, dict) else node
        stack.extend((child, depth + 1) for child in children if isinstance(child, dict | list))
    return False


def identity(event: dict[str, Any]) -> tuple[str, str]:
    """(uid, resourceVersion), empty strings where missing or not strings."""
    meta = event.get("metadata")
    if not isinstance(meta, dict):
        return "", ""
    uid = meta.get("uid")
    rv = meta.get("resourceVersion")
    return (uid if isinstance(uid, str) else "", rv if isinstance(rv, str) else "")


def doc_id(event: dict[str, Any]) -> str:
    """``<uid>:<resourceVersion>``: a replay of the same version overwrites its document."""
    uid, rv = identity(event)
    return f"{uid}:{rv}"


def parse_time(value: Any) -> datetime | None:
    """An RFC 3339 timestamp as the API server writes it, as an aware UTC datetime; else None."""
    if not isinstance(value, str):
        return None
    match = _RFC3339.match(value.strip())
    if not match:
        return None
    year, month, day, hour, minute, second = (int(g) for g in match.groups()[:6])
    fraction, zone = match.group(7), match.group(8)
    micros = int((fraction or "0").ljust(6, "0")[:6])
    try:
        stamp = datetime(year, month, day, hour, minute, second, micros, tzinfo=UTC)
    except ValueError:
        return None
    if zone not in ("Z", "z"):
        sign = 1 if zone[0] == "+" else -1
        offset = sign * (int(zone[1:3]) * 3600 + int(zone[4:6]) * 60)
        try:
            stamp -= timedelta(seconds=offset)
        except OverflowError:
            return None
    return stamp


def _dig(event: dict[str, Any], path: tuple[str, ...]) -> Any:
    node: Any = event
    for key in path:
        if not isinstance(node, dict):
            return None
        node = node.get(key)
    return node


def event_time(event: dict[str, Any]) -> datetime | None:
    """When the event last happened: the first parseable of :data:`TIME_FIELDS`."""
    for path in TIME_FIELDS:
        stamp = parse_time(_dig(event, path))
        if stamp is not None:
            return stamp
    return None


def index_name(prefix: str, when: datetime) -> str:
    """The daily index of an event: ``<prefix>-YYYY.MM.dd`` of its own time in UTC."""
    return f"{prefix}-{when.astimezone(UTC):%Y.%m.%d}"


def format_time(when: datetime) -> str:
    """ISO 8601 in UTC with milliseconds, as Elasticsearch's strict_date_optional_time accepts."""
    return when.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.") + f"{when.microsecond // 1000:03d}Z"


_DIGITS = re.compile(r"[0-9]{1,19}")


def count_value(value: Any) -> int | None:
    """A ``count`` or ``series.count`` as the whole number it stands for, or None if it is none.

    THE rule, for the counts and the document alike: a JSON integer from 0 to 2**63-1 (a long), or
    a string of decimal digits in that range (``"7"`` is 7). Anything else (a negative, a fraction,
    a bool, any other string, an object) is no count at all.
    """
    if isinstance(value, str) and _DIGITS.fullmatch(value):
        value = int(value)
    if isinstance(value, int) and not isinstance(value, bool) and 0 <= value <= MAX_COUNT:
        return value
    return None


def occurrence_count(event: dict[str, Any]) -> int:
    """How many times this event has happened so far, by the API server's account.

    ``series.count`` for events.k8s.io-style series, else ``count``, each read by
    :func:`count_value`; an event with neither (or with 0, as events.k8s.io writers leave it, or
    with no valid count) has happened once.
    """
    for path in (("series", "count"), ("count",)):
        value = count_value(_dig(event, path))
        if value:
            return value
    return 1


def to_document(event: dict[str, Any], cluster: str, when: datetime) -> dict[str, Any]:
    """The Elasticsearch document: the Event as the API returned it, plus ``@timestamp`` and ``cluster``.

    Nothing else is added, so the Logstash path (which cannot know more) indexes the same document.
    ``count`` and ``series.count`` are written as :func:`count_value` reads them (a digit string
    as its number, anything else as null), so the document says what the counts counted and the
    index's ``long`` mapping never refuses it.
    """
    doc = dict(strip_managed_fields(event))
    if "count" in doc:
        doc["count"] = count_value(doc["count"])
    series = doc.get("series")
    if isinstance(series, dict) and "count" in series:
        doc["series"] = {**series, "count": count_value(series["count"])}
    doc["@timestamp"] = format_time(when)
    doc["cluster"] = cluster
    return doc


def encode_json(value: Any) -> bytes:
    """Compact UTF-8 JSON of a decoded value; a lone surrogate (valid as a ``\\u`` escape in JSON, not
    in UTF-8) is written escaped rather than raising."""
    try:
        return json.dumps(value, ensure_ascii=False, separators=(",", ":")).encode()
    except UnicodeEncodeError:
        return json.dumps(value, separators=(",", ":")).encode()


def encode_raw(event: dict[str, Any]) -> bytes:
    """The raw topic's value: the Event JSON as the API returned it, ``managedFields`` dropped."""
    return json.dumps(strip_managed_fields(event), ensure_ascii=False, separators=(",", ":")).encode()


def strip_managed_fields(event: dict[str, Any]) -> dict[str, Any]:
    """The Event without ``metadata.managedFields`` (server-side-apply bookkeeping, no clue for anyone)."""
    meta = event.get("metadata")
    if isinstance(meta, dict) and "managedFields" in meta:
        return {**event, "metadata": {k: v for k, v in meta.items() if k != "managedFields"}}
    return event


@dataclass(frozen=True, slots=True)
class Summary:
    """The few fields the count tables and filters look at."""

    namespace: str
    type: str
    reason: str
    kind: str


def summary(event: dict[str, Any]) -> Summary:
    def text(path: tuple[str, ...], default: str) -> str:
        value = _dig(event, path)
        return value if isinstance(value, str) and value else default

    return Summary(
        namespace=text(("metadata", "namespace"), "") or text(("involvedObject", "namespace"), "_cluster"),
        type=text(("type",), "Normal"),
        reason=text(("reason",), "Unknown"),
        kind=text(("involvedObject", "kind"), "Unknown"),
    )
