"""The count agent: occurrences per window by (namespace, type, reason) and by (kind, reason).

It takes batches of clean records and sums the whole batch per key and window first, so a table
gets one write per key and window per batch, not one per event, and nothing is repartitioned.

A batch holds records of every partition this worker owns; its sums are written under one of them
(the partition of the batch's last record: the key's ``<partition>|`` prefix and the changelog
partition agree, so a rebalance restores them together). Each occurrence is still counted in
exactly one partition's share, and the views add the shares of all partitions. Summing per
partition instead wrote up to one record per key, window and partition: with a few hundred keys
and six partitions, about as many table writes as events (bench.sink).
"""

from __future__ import annotations

import faust
from faust.types import EventT, StreamT

from streams.agents.current import processing
from streams.counts import Occurrence, aggregate
from streams.records import CleanEvent
from streams.settings import Settings
from streams.tables.counts import CountTables
from streams.topics import Topics


def count_batch(tables: CountTables, batch: list[EventT]) -> None:
    """Add one batch of clean-topic events to the tables, under the partition of its last event."""
    if not batch:
        return
    sums = aggregate(
        Occurrence(v.time, v.namespace, v.type, v.reason, v.kind, v.occurrences) for v in (e.value for e in batch)
    )
    last = batch[-1]
    # The changelog goes to the partition of the event named here: the one the keys carry.
    with processing(last):
        tables.add(last.message.partition, sums)


def install(app: faust.App, settings: Settings, topics: Topics, tables: CountTables) -> None:
    async def count(stream: StreamT[CleanEvent]) -> None:
        async for batch in stream.take_events(settings.stages.count_batch, within=settings.stages.count_within):
            count_batch(tables, list(batch))

    app.agent(topics.clean, name="count")(count)
