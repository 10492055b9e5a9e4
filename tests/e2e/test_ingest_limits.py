"""Ingest against hostile input and a refused Lease, on the real stack."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import pytest
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from elasticsearch import Elasticsearch
from kubernetes import client

from devstack import transient, wait
from streams.ingest.truncate import SUFFIX
from tests.e2e.helpers import create_event, documents, identity, metric, wait_for_documents
from tests.fixtures.stack import unique_name

pytestmark = [pytest.mark.stack, pytest.mark.e2e, pytest.mark.slow]

BIG = 1_400_000


def test_an_event_over_kafkas_limit_arrives_cut_and_marked_and_events_after_it_flow(
    make_worker: Any, kube_client: client.ApiClient, namespace: str, es_client: Elasticsearch
) -> None:
    worker = make_worker(K8SEV_NAMESPACES=namespace)
    core = client.CoreV1Api(kube_client)
    big = create_event(core, namespace, "huge", reason="Huge", message="x" * BIG)
    after = [create_event(core, namespace, f"after-{i}") for i in range(5)]
    expected = {identity(big), *(identity(e) for e in after)}

    docs = wait_for_documents(es_client, worker, len(expected))
    assert sorted(d["_id"] for d in docs) == sorted(expected)
    cut = next(d for d in docs if d["_id"] == identity(big))
    assert cut["metadata"]["name"] == "huge" and cut["reason"] == "Huge"
    assert cut["truncated"]["originalBytes"] > BIG
    assert len(cut["truncated"]["sha256"]) == 64 and cut["truncated"]["fields"] == ["message"]
    assert cut["message"].endswith(SUFFIX) and 800_000 < len(cut["message"]) < BIG
    # A search finds it.
    assert [d["_id"] for d in documents(es_client, worker.index_prefix, exists={"field": "truncated"})] == [
        identity(big)
    ]
    assert metric(worker.metrics(), "k8sev_events_truncated_total") >= 1
    assert "event=event_truncated" in worker.log.read_text()


def test_a_raw_topic_that_allows_less_than_the_producer_sends_stops_the_worker_with_status_2(
    make_worker: Any, stack: dict[str, str]
) -> None:
    topic = unique_name("small-raw")

    async def create() -> None:
        admin = AIOKafkaAdminClient(bootstrap_servers=stack["DEVSTACK_KAFKA_BOOTSTRAP"])
        await admin.start()
        try:
            await admin.create_topics(
                [NewTopic(topic, 3, 1, topic_configs={"max.message.bytes": "500000"})], validate_only=False
            )
        finally:
            await admin.close()

    asyncio.run(create())
    worker = make_worker(ready=False, K8SEV_TOPIC=topic)
    assert worker.proc is not None
    proc = worker.proc
    code = wait.until("the worker to exit", proc.poll, timeout=90, ready=lambda rc: rc is not None)
    assert code == 2
    text = worker.log.read_text()
    assert "allows records of 500000 bytes" in text and "K8SEV_KAFKA_MAX_REQUEST_BYTES=1048576" in text


def test_a_lease_in_a_missing_namespace_makes_readyz_say_why(make_worker: Any) -> None:
    missing = unique_name("no-such-ns")
    worker = make_worker(ready=False, K8SEV_LEASE_NAMESPACE=missing)

    def lease_check() -> dict[str, Any] | None:
        status, body = worker.get("/readyz", timeout=2)
        check = json.loads(body).get("checks", {}).get("lease") if status == 503 else None
        # Until its first election round the check says "not checked yet": wait for the round's answer.
        return check if check and not check["ok"] and check["detail"] != "not checked yet" else None

    check = wait.until("/readyz to report the lease", lease_check, timeout=90, not_yet=transient.http)
    assert check is not None
    assert "create refused: 404" in check["detail"] and f'namespaces "{missing}" not found' in check["detail"]
    # Logged with the reason once per change, not at every retry (one every 2 s).
    wait.holds(
        "one lease_error line while the create keeps failing",
        lambda: worker.log.read_text().count("event=lease_error"),
        duration=6,
        ready=lambda lines: lines == 1,
    )
