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

        if not self._partitions:
            parts = await self._consumer._client.fetch_all_metadata()
            found = parts.partitions_for_topic(self.topic)
            if not found:
                return 0
            self._partitions = [TopicPartition(self.topic, p) for p in sorted(found)]
        offsets = await self._consumer.end_offsets(self._partitions)
        return int(sum(offsets.values()))

    async def stop(self) -> None:
        if self._consumer is not None:
            await self._consumer.stop()
