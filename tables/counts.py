"""Occurrence counts in tumbling windows of one minute and one hour (see :mod:`streams.counts`)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta
from typing import Any

import faust

from streams.counts import WINDOWS
from streams.records import CleanEvent
from streams.settings import Settings


@dataclass(frozen=True)
class CountTables:
    #: window label -> windowed table keyed ``<namespace>/<type>/<reason>``
    by_reason: dict[str, Any]
    #: window label -> windowed table keyed ``<kind>/<reason>``
    by_kind: dict[str, Any]


def declare(app: faust.App, settings: Settings) -> CountTables:
    def table(name: str, size: timedelta, expires: timedelta, help_text: str) -> Any:
        # Windows follow the event's own time, not the time Kafka received it: a backlog replayed after
        # an outage lands in the minutes the events happened.
        plain = app.Table(name, default=int, partitions=settings.kafka.topic_partitions, help=help_text)
        return plain.tumbling(size, expires=expires).relative_to_field(CleanEvent.time)

    return CountTables(
        by_reason={
            label: table(f"counts-by-reason-{label}", size, expires, f"occurrences per namespace/type/reason, {label}")
            for label, (size, expires) in WINDOWS.items()
        },
        by_kind={
            label: table(f"counts-by-kind-{label}", size, expires, f"occurrences per involved kind/reason, {label}")
            for label, (size, expires) in WINDOWS.items()
        },
    )
