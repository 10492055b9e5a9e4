"""Kafka for benchmarks: create a topic, produce fast, follow a topic's end offsets."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Iterator
from typing import Any


async def create_topic(bootstrap: str, name: str, partitions: int) -> None:
    from aiokafka.admin import AIOKafkaAdminClient, NewTopic

    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    try:
        await admin.create_topics([NewTopic(name, num_partitions=partitions, replication_factor=1)])
    finally:
        await admin.close()


async def produce(
    bootstrap: str,
    topic: str,
    values: Iterator[tuple[bytes, bytes]],
    limit: int,
    progress: Callable[[int], None] | None = None,
) -> int:
    """Produce (key, value) pairs as fast as the client goes; returns how many Kafka acknowledged."""
    from aiokafka import AIOKafkaProducer

    producer = AIOKafkaProducer(
        bootstrap_servers=bootstrap, acks="all", linger_ms=20, max_batch_size=1 << 20, max_request_size=4 << 20
    )
    await producer.start()
    done = 0
    try:
        pending: list[asyncio.Future[Any]] = []
        for key, value in values:
            if done + len(pending) >= limit:
                break
            pending.append(await producer.send(topic, value=value, key=key))
            if len(pending) >= 5000:
                await asyncio.gather(*pending)
                done += len(pending)
                pending = []
                if progress:
                    progress(done)
        await asyncio.gather(*pending)
        done += len(pending)
        if progress:
            progress(done)
    finally:
        await producer.stop()
    return done


async def last_records(bootstrap: str, topic: str, count: int) -> list[tuple[bytes, bytes]]:
    """The last ``count`` records of ``topic`` as (key, value), an even share from each partition."""
    from aiokafka import AIOKafkaConsumer, TopicPartition

    from streams.core import faust_compat

    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False, max_poll_records=5000)
    await consumer.start()
    try:
        found = consumer.partitions_for_topic(topic) or set()
        if not found:
            await faust_compat.aiokafka_client(consumer).force_metadata_update()
            found = consumer.partitions_for_topic(topic) or set()
        parts = [TopicPartition(topic, p) for p in sorted(found)]
        consumer.assign(parts)
        ends = await consumer.end_offsets(parts)
        starts = await consumer.beginning_offsets(parts)
        share, extra = divmod(count, len(parts))
        wanted: dict[Any, int] = {}
        for i, tp in enumerate(parts):
            take = min(share + (1 if i < extra else 0), ends[tp] - starts[tp])
            consumer.seek(tp, ends[tp] - take)
            wanted[tp] = take
        out: list[tuple[bytes, bytes]] = []
        got = dict.fromkeys(parts, 0)
        while any(got[tp] < wanted[tp] for tp in parts):
            batch = await consumer.getmany(timeout_ms=1000)
            for tp, messages in batch.items():
                for message in messages:
                    if got[tp] < wanted[tp] and message.offset < ends[tp]:
                        out.append((message.key, message.value))
                        got[tp] += 1
        return out
    finally:
        await consumer.stop()


class OffsetWatcher:
    """Sum of the end offsets of a topic (how many records it holds, all partitions)."""

    def __init__(self, bootstrap: str, topic: str) -> None:
        self.bootstrap = bootstrap
        self.topic = topic
        self._consumer: Any = None
        self._partitions: list[Any] = []

    async def start(self) -> None:
        from aiokafka import AIOKafkaConsumer

        self._consumer = AIOKafkaConsumer(bootstrap_servers=self.bootstrap, enable_auto_commit=False)
        await self._consumer.start()

    async def total(self) -> int:
        from aiokafka import TopicPartition

        from streams.core import faust_compat

        if not self._partitions:
            parts = await faust_compat.aiokafka_client(self._consumer).fetch_all_metadata()
            found = parts.partitions_for_topic(self.topic)
            if not found:
                return 0
            self._partitions = [TopicPartition(self.topic, p) for p in sorted(found)]
        offsets = await self._consumer.end_offsets(self._partitions)
        return int(sum(offsets.values()))

    async def stop(self) -> None:
        if self._consumer is not None:
            await self._consumer.stop()
