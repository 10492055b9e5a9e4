"""Counting: occurrences per window by (namespace, type, reason) and by (kind, reason), added by the
dedup agent for every batch it delivered.

Dedup already holds each batch of new versions, decoded, on the raw topic's partitions (keyed by
uid), so it counts them there: a count agent of its own on the clean topic cost a second Faust
consumption and a second decode of every record (docs/benchmarks.md). A batch is summed per key
and window first, so a table gets one write per key and window per batch, and nothing is
repartitioned.

A batch holds records of every partition this worker owns; its sums are written under one of them
(the partition of the batch's last record: the key's ``<partition>|`` prefix and the changelog
partition agree, so a rebalance restores them together). Each occurrence is still counted in
exactly one partition's share, and the views add the shares of all partitions.
"""

from __future__ import annotations

from collections.abc import Sequence

from faust.types import EventT

from streams.agents.current import processing
from streams.core.records import CleanEvent
from streams.counts.windows import Occurrence, aggregate
from streams.tables.counts import CountTables


class Counter:
    """Adds delivered clean records to the count tables; called by dedup, on its stream."""

    def __init__(self, tables: CountTables) -> None:
        self.tables = tables

    def add(self, delivered: Sequence[CleanEvent], last: EventT) -> None:
        """Add ``delivered`` under the partition of ``last``, the batch's last raw record."""
        sums = aggregate(Occurrence(v.time, v.namespace, v.type, v.reason, v.kind, v.occurrences) for v in delivered)
        if not sums:
            return
        # The changelog goes to the partition of the event named here: the one the keys carry.
        with processing(last):
            self.tables.add(last.message.partition, sums)
