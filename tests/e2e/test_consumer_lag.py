"""``k8sev_consumer_lag_records`` on the real stack: it rises while a stage is behind, agrees with the
consumer group's offsets in Kafka, and returns to 0 once the records are done."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import pytest
from aiokafka import AIOKafkaConsumer
from aiokafka.admin import AIOKafkaAdminClient
from elasticsearch import Elasticsearch

from devstack import offsets, wait
from devstack.worker import free_port, peer_env
from tests.e2e.helpers import metric, produce, wait_for_documents

pytestmark = [pytest.mark.stack, pytest.mark.e2e, pytest.mark.slow]

RECORDS = 60


def lags(worker: Any) -> tuple[float, float] | None:
    """(dedup, sink) as the worker exports them; None while its web server is not up yet."""
    worker.check()
    try:
        status, body = worker.get("/metrics")
    except OSError:
        return None
    text = body.decode()
    if status != 200 or "k8sev_consumer_lag_records{" not in text:
        return None
    return tuple(metric(text, "k8sev_consumer_lag_records", stage=stage) for stage in ("dedup", "sink"))  # type: ignore[return-value]


def until_lag(worker: Any, what: str, wanted: tuple[int, int], timeout: float) -> None:
    wait.until(what, lambda: lags(worker), timeout=timeout, ready=lambda v: v == wanted)


def raw_records(count: int) -> list[tuple[bytes, bytes]]:
    records = []
    for i in range(count):
        body = {
            "metadata": {"uid": f"lag{i}", "resourceVersion": "1", "namespace": "lag", "name": f"lag{i}"},
            "reason": "Lagging",
            "lastTimestamp": "2026-03-04T05:06:07Z",
        }
        records.append((f"lag{i}".encode(), json.dumps(body).encode()))
    return records


async def group_behind(bootstrap: str, group: str, topic: str) -> int:
    """What Kafka itself says: the group's uncommitted records on ``topic``."""
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap)
    await admin.start()
    await consumer.start()
    try:
        return (await offsets.progress(admin, consumer, group, [topic])).behind[topic]
    finally:
        await consumer.stop()
        await admin.close()


async def test_lag_rises_while_the_sink_cannot_index_and_returns_to_zero(
    make_worker: Any, stack: dict[str, str], es_client: Elasticsearch, kafka_bootstrap: str
) -> None:
    # A search engine nobody listens for: dedup goes on, the sink retries and commits nothing.
    nowhere = f"http://127.0.0.1:{free_port()}"
    stuck = make_worker(K8SEV_INGEST="false", K8SEV_ES_URL=nowhere, ready=False)
    await asyncio.to_thread(until_lag, stuck, "the stuck worker's lag series", (0, 0), 180)
    await produce(kafka_bootstrap, stuck.raw_topic, raw_records(RECORDS))

    # Dedup delivers every record and commits; the sink's share stays behind, all of it.
    await asyncio.to_thread(until_lag, stuck, "dedup done, the sink behind by every record", (0, RECORDS), 120)
    assert await group_behind(kafka_bootstrap, stuck.app_id, stuck.clean_topic) == RECORDS
    stuck.stop()
    # Stopping commits nothing the engine did not take.
    assert await group_behind(kafka_bootstrap, stuck.app_id, stuck.clean_topic) == RECORDS

    # The same deployment with the engine back: the backlog is indexed and the lag falls to 0.
    healthy = make_worker(**peer_env(stuck.env, "healthy", K8SEV_ES_URL=stack["DEVSTACK_ELASTICSEARCH_URL"]))
    assert len(await asyncio.to_thread(wait_for_documents, es_client, healthy, RECORDS)) == RECORDS
    await asyncio.to_thread(until_lag, healthy, "the lag of both stages back to 0", (0, 0), 60)
    assert await group_behind(kafka_bootstrap, healthy.app_id, healthy.clean_topic) == 0
