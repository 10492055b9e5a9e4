"""Has a consumer group read everything? Its committed offsets against the topics' end offsets.

"Nothing more arrives" cannot be seen by waiting a while: something later than the wait is missed.
It can be seen in Kafka: once the worker's consumer group (Faust names it after the app id) has
committed, on every partition, the end offset of the topics it reads, every record on them has been
processed by every agent (Faust commits an offset only when all agents acknowledged the record;
the sink acknowledges only after the search engine accepted the document).
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from devstack import transient, wait


async def known_partitions(consumer: Any, topic: str) -> list[Any]:
    """The partitions of ``topic`` in the consumer's metadata (refreshed once if it has none);
    ``UnknownTopicOrPartitionError`` (retriable: "not yet") while the metadata lacks the topic."""
    from aiokafka import TopicPartition
    from aiokafka.errors import UnknownTopicOrPartitionError

    found = consumer.partitions_for_topic(topic)
    if not found:
        await consumer._client.force_metadata_update()
        found = consumer.partitions_for_topic(topic)
    if not found:
        # A topic the worker creates at start-up and whose metadata has not reached us yet.
        raise UnknownTopicOrPartitionError(f"no partitions known for {topic}")
    return [TopicPartition(topic, p) for p in sorted(found)]


async def partitions(consumer: Any, topic: str, timeout: float = 30.0) -> list[Any]:  # noqa: ASYNC109 - for the wait
    """The partitions of ``topic``, waiting until the consumer's metadata has them."""
    return await wait.until_async(f"partitions of {topic}", lambda: known_partitions(consumer, topic),
                                  timeout=timeout, interval=0.2, not_yet=transient.kafka)  # fmt: skip


@dataclass(frozen=True)
class Progress:
    """Per topic: records on it (end offsets summed) and records the group has not committed yet."""

    end: dict[str, int]
    behind: dict[str, int]

    @property
    def done(self) -> bool:
        return not any(self.behind.values())


async def progress(admin: Any, consumer: Any, group: str, topics: Sequence[str]) -> Progress:
    """Where ``group`` stands on ``topics``, every partition counted."""
    partitions: list[Any] = []
    for topic in topics:
        partitions.extend(await known_partitions(consumer, topic))
    ends = await consumer.end_offsets(partitions)
    committed = await admin.list_consumer_group_offsets(group, partitions=partitions)
    end = dict.fromkeys(topics, 0)
    behind = dict.fromkeys(topics, 0)
    for tp in partitions:
        meta = committed.get(tp)
        # -1 (or nothing): the group never committed this partition; it has consumed nothing of it.
        done = max(meta.offset, 0) if meta is not None else 0
        end[tp.topic] += int(ends[tp])
        behind[tp.topic] += max(0, int(ends[tp]) - done)
    return Progress(end, behind)


async def caught_up(
    bootstrap: str,
    group: str,
    topics: Sequence[str],
    timeout: float = 120.0,  # noqa: ASYNC109 - passed to the wait, which reports the last progress seen
) -> Progress:
    """Wait until ``group`` has committed the end offsets of ``topics`` on every partition."""
    # The broker may be restarting (fault tests): connecting is part of the wait.
    admin, consumer = await wait.until_async(
        f"a Kafka connection to {bootstrap}", lambda: _connect(bootstrap), timeout=timeout, not_yet=transient.kafka
    )
    try:
        return await wait.until_async(
            f"consumer group {group} to commit the end offsets of {', '.join(topics)}",
            lambda: progress(admin, consumer, group, topics),
            timeout=timeout,
            ready=lambda found: found.done,
            not_yet=transient.kafka,
        )
    finally:
        await consumer.stop()
        await admin.close()


async def _connect(bootstrap: str) -> tuple[Any, Any]:
    from aiokafka import AIOKafkaConsumer
    from aiokafka.admin import AIOKafkaAdminClient

    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False)
    try:
        await admin.start()
        await consumer.start()
    except BaseException:
        await consumer.stop()
        await admin.close()
        raise
    return admin, consumer


def caught_up_sync(bootstrap: str, group: str, topics: Sequence[str], timeout: float = 120.0) -> Progress:
    """:func:`caught_up` from synchronous code (not from inside a running event loop)."""
    return asyncio.run(caught_up(bootstrap, group, topics, timeout))
