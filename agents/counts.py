"""The count agent: occurrences per window by (namespace, type, reason) and by (kind, reason).

It takes batches of clean records and sums them per partition, key and window first, so a table
gets one write per key and window per batch, not one per event, and nothing is repartitioned.
"""

from __future__ import annotations

import collections

import faust
from faust.types import EventT, StreamT

from streams.agents.current import processing
from streams.counts import Occurrence, aggregate
from streams.records import CleanEvent
from streams.settings import Settings
from streams.tables.counts import CountTables
from streams.topics import Topics


def count_batch(tables: CountTables, batch: list[EventT]) -> None:
    """Add one batch of clean-topic events to the tables, partition by partition."""
    by_partition: dict[int, list[EventT]] = collections.defaultdict(list)
    for event in batch:
        by_partition[event.message.partition].append(event)
    for partition, events in by_partition.items():
        sums = aggregate(
            Occurrence(v.time, v.namespace, v.type, v.reason, v.kind, v.occurrences) for v in (e.value for e in events)
        )
        with processing(events[-1]):
            tables.add(partition, sums)


def install(app: faust.App, settings: Settings, topics: Topics, tables: CountTables) -> None:
    async def count(stream: StreamT[CleanEvent]) -> None:
        async for batch in stream.take_events(settings.stages.count_batch, within=settings.stages.count_within):
            count_batch(tables, list(batch))

    app.agent(topics.clean, name="count")(count)
