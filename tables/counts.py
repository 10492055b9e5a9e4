"""Occurrence counts in tumbling windows of one minute and one hour.

``by_reason`` is keyed ``<namespace>/<type>/<reason>`` and filled from a stream grouped by
namespace, so every key of one namespace lives in the same partition: a view for one namespace
is answered by the one worker that owns it. ``by_kind`` is keyed ``<kind>/<reason>`` and grouped
by kind. Namespaces, types and kinds cannot contain ``/``; a reason might, so it comes last.
"""

from __future__ import annotations

from datetime import timedelta

from streams.application import app, settings
from streams.records import CleanEvent

MINUTE = timedelta(minutes=1)
HOUR = timedelta(hours=1)

#: How long closed windows stay queryable.
MINUTE_EXPIRES = timedelta(hours=2)
HOUR_EXPIRES = timedelta(days=2)

WINDOWS = {"1m": (MINUTE, MINUTE_EXPIRES), "1h": (HOUR, HOUR_EXPIRES)}


def _table(name: str, size: timedelta, expires: timedelta, help_text: str):  # type: ignore[no-untyped-def]
    # Windows follow the event's own time, not the time Kafka received it: a backlog replayed after
    # an outage lands in the minutes the events happened.
    table = app.Table(name, default=int, partitions=settings.topic_partitions, help=help_text)
    return table.tumbling(size, expires=expires).relative_to_field(CleanEvent.time)


by_reason = {
    label: _table(f"counts-by-reason-{label}", size, expires, f"occurrences per namespace/type/reason, {label}")
    for label, (size, expires) in WINDOWS.items()
}
by_kind = {
    label: _table(f"counts-by-kind-{label}", size, expires, f"occurrences per involved kind/reason, {label}")
    for label, (size, expires) in WINDOWS.items()
}


def reason_key(namespace: str, event_type: str, reason: str) -> str:
    return f"{namespace}/{event_type}/{reason}"


def split_reason_key(key: str) -> tuple[str, str, str]:
    namespace, event_type, reason = key.split("/", 2)
    return namespace, event_type, reason


def kind_key(kind: str, reason: str) -> str:
    return f"{kind}/{reason}"


def split_kind_key(key: str) -> tuple[str, str]:
    kind, reason = key.split("/", 1)
    return kind, reason
