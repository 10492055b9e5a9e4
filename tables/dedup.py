"""Dedup's memory: per uid, the last delivered resourceVersion and its occurrence count.

A tumbling-windowed table whose window is the dedup horizon: a lookup reads the current window
and the one before it, so a uid is remembered for at least the horizon and forgotten after at most
three horizons (the closed window is kept ``expires`` longer, then dropped from memory and, through
the changelog topic's retention, from Kafka). State stays bounded however long the worker runs.
"""

from __future__ import annotations

from typing import Any

import faust

from streams.dedup import Seen
from streams.settings import Settings


class DedupMemory:
    """What dedup delivered per uid; read and written only from the dedup agent's stream."""

    def __init__(self, app: faust.App, settings: Settings) -> None:
        self._horizon = settings.stages.dedup_horizon
        self.table = app.Table(
            "dedup-seen",
            default=lambda: None,
            partitions=settings.kafka.topic_partitions,
            help="uid -> [resourceVersion, count] of the last version delivered to the clean topic",
        ).tumbling(self._horizon, expires=self._horizon)

    def recall(self, uid: str) -> Seen | None:
        """What was last delivered for ``uid`` within the horizon (current window first)."""
        window = self.table[uid]
        value: Any = window.current()
        if value is None:
            value = window.delta(self._horizon)
        if not value:
            return None
        return Seen(resource_version=str(value[0]), count=int(value[1]))

    def remember(self, uid: str, delivered: Seen) -> None:
        self.table[uid] = [delivered.resource_version, delivered.count]


def declare(app: faust.App, settings: Settings) -> DedupMemory:
    return DedupMemory(app, settings)
