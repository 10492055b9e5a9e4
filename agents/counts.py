"""The count agents: occurrences per window by (namespace, type, reason) and by (kind, reason)."""

from __future__ import annotations

import faust
from faust.types import StreamT

from streams.counts import kind_key, reason_key
from streams.records import CleanEvent
from streams.tables.counts import CountTables
from streams.topics import Topics


def install(app: faust.App, topics: Topics, tables: CountTables) -> None:
    async def count_by_namespace(stream: StreamT[CleanEvent]) -> None:
        # Grouped by namespace: all keys of a namespace share a partition, hence one owning worker.
        async for item in stream.group_by(
            lambda e: e.namespace.encode(), name="by-namespace", topic=topics.by_namespace
        ):
            if item.occurrences:
                key = reason_key(item.namespace, item.type, item.reason)
                for table in tables.by_reason.values():
                    table[key] += item.occurrences

    async def count_by_kind(stream: StreamT[CleanEvent]) -> None:
        async for item in stream.group_by(lambda e: e.kind.encode(), name="by-kind", topic=topics.by_kind):
            if item.occurrences:
                key = kind_key(item.kind, item.reason)
                for table in tables.by_kind.values():
                    table[key] += item.occurrences

    app.agent(topics.clean, name="count_by_namespace")(count_by_namespace)
    app.agent(topics.clean, name="count_by_kind")(count_by_kind)
