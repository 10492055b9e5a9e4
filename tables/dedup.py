"""Dedup's memory: per uid, the last delivered resourceVersion and its occurrence count.

A tumbling-windowed table whose window is the dedup horizon: a lookup reads the current window
and the one before it, so a uid is remembered for at least the horizon and forgotten after at most
three horizons (the closed window is kept ``expires`` longer, then dropped from memory and, through
the changelog topic's retention, from Kafka). State stays bounded however long the worker runs.
"""

from __future__ import annotations

from typing import Any

from streams.application import app, settings
from streams.dedup import Seen

seen = app.Table(
    "dedup-seen",
    default=lambda: None,
    partitions=settings.topic_partitions,
    help="uid -> [resourceVersion, count] of the last version delivered to the clean topic",
).tumbling(settings.dedup_horizon, expires=settings.dedup_horizon)


def recall(uid: str) -> Seen | None:
    """What was last delivered for ``uid`` within the horizon (current window first)."""
    window = seen[uid]
    value: Any = window.current()
    if value is None:
        value = window.delta(settings.dedup_horizon)
    if not value:
        return None
    return Seen(resource_version=str(value[0]), count=int(value[1]))


def remember(uid: str, delivered: Seen) -> None:
    seen[uid] = [delivered.resource_version, delivered.count]
