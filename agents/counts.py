"""The count agents: occurrences per window by (namespace, type, reason) and by (kind, reason)."""

from __future__ import annotations

from faust.types import StreamT

from streams.application import app
from streams.records import CleanEvent
from streams.tables.counts import by_kind, by_reason, kind_key, reason_key
from streams.topics import by_kind_topic, by_namespace_topic, clean_topic


@app.agent(clean_topic)
async def count_by_namespace(stream: StreamT[CleanEvent]) -> None:
    # Grouped by namespace: all keys of a namespace share a partition, hence one owning worker.
    async for item in stream.group_by(lambda e: e.namespace.encode(), name="by-namespace", topic=by_namespace_topic):
        if item.occurrences:
            key = reason_key(item.namespace, item.type, item.reason)
            for table in by_reason.values():
                table[key] += item.occurrences


@app.agent(clean_topic)
async def count_by_kind(stream: StreamT[CleanEvent]) -> None:
    async for item in stream.group_by(lambda e: e.kind.encode(), name="by-kind", topic=by_kind_topic):
        if item.occurrences:
            key = kind_key(item.kind, item.reason)
            for table in by_kind.values():
                table[key] += item.occurrences
