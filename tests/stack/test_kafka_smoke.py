"""The Kafka broker is real: produce and consume through aiokafka, in a consumer group, with acks=all."""

from __future__ import annotations

import asyncio

import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from aiokafka.admin import AIOKafkaAdminClient

from streams.core import faust_compat
from tests.fixtures.stack import unique_name

pytestmark = pytest.mark.stack


async def test_broker_is_kraft_kafka_4(kafka_bootstrap: str) -> None:
    admin = AIOKafkaAdminClient(bootstrap_servers=kafka_bootstrap)
    await admin.start()
    try:
        cluster = await admin.describe_cluster()
        versions = faust_compat.aiokafka_client(admin).cluster.brokers()
    finally:
        await admin.close()
    assert [b["node_id"] for b in cluster["brokers"]] == [1]
    assert cluster["controller_id"] == 1
    assert versions


async def test_produce_and_consume_in_a_group(kafka_bootstrap: str, topic: str) -> None:
    producer = AIOKafkaProducer(bootstrap_servers=kafka_bootstrap, acks="all", enable_idempotence=True)
    await producer.start()
    try:
        sent = {f"uid-{i}".encode(): f'{{"n": {i}}}'.encode() for i in range(50)}
        for key, value in sent.items():
            await producer.send(topic, value=value, key=key)
        await producer.flush()
    finally:
        await producer.stop()

    consumer = AIOKafkaConsumer(
        topic,
        bootstrap_servers=kafka_bootstrap,
        group_id=unique_name("g"),
        auto_offset_reset="earliest",
        enable_auto_commit=False,
    )
    await consumer.start()
    received: dict[bytes, bytes] = {}
    try:
        async with asyncio.timeout(60):
            while len(received) < len(sent):
                batch = await consumer.getmany(timeout_ms=1000)
                for records in batch.values():
                    received.update((r.key, r.value) for r in records if r.key is not None and r.value is not None)
        await consumer.commit()
        committed = {tp: await consumer.committed(tp) for tp in consumer.assignment()}
    finally:
        await consumer.stop()
    assert received == sent
    assert sum(offset or 0 for offset in committed.values()) == len(sent)
