"""The worker over secured connections: Kafka TLS with SASL (SCRAM-SHA-512, PLAIN) or client
certificates, and the search engines over HTTPS with basic auth, an API key or a client certificate.

The Kafka listeners are the broker's own; HTTPS is nginx in front of the nodes (see
devstack/https_proxy.py). Secrets reach the worker as files and must never appear in its log.
"""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

import pytest
from aiokafka import AIOKafkaProducer

from devstack import wait
from tests.e2e.helpers import wait_for_documents

pytestmark = [pytest.mark.stack, pytest.mark.slow]


def raw_event(uid: str) -> bytes:
    stamp = "2026-02-03T04:05:06Z"
    return json.dumps(
        {
            "metadata": {"uid": uid, "resourceVersion": "1", "namespace": "secure", "name": uid},
            "involvedObject": {"kind": "Pod", "name": uid},
            "reason": "Secured",
            "type": "Normal",
            "count": 1,
            "lastTimestamp": stamp,
        }
    ).encode()


async def produce(bootstrap: str, topic: str, count: int) -> None:
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, acks="all")
    await producer.start()
    try:
        for i in range(count):
            await producer.send(topic, raw_event(f"s{i}"), key=f"s{i}".encode())
        await producer.flush()
    finally:
        await producer.stop()


def secrets_of(stack: dict[str, str]) -> list[str]:
    return [
        Path(stack[name]).read_text().strip()
        for name in ("DEVSTACK_KAFKA_PASSWORD_FILE", "DEVSTACK_SEARCH_PASSWORD_FILE", "DEVSTACK_SEARCH_API_KEY_FILE")
    ]


def sasl(stack: dict[str, str], mechanism: str) -> dict[str, str]:
    return {
        "K8SEV_BROKER": stack["DEVSTACK_KAFKA_SASL_SSL_BOOTSTRAP"],
        "K8SEV_KAFKA_SECURITY_PROTOCOL": "SASL_SSL",
        "K8SEV_KAFKA_SASL_MECHANISM": mechanism,
        "K8SEV_KAFKA_USERNAME": stack["DEVSTACK_KAFKA_USER"],
        "K8SEV_KAFKA_PASSWORD_FILE": stack["DEVSTACK_KAFKA_PASSWORD_FILE"],
        "K8SEV_KAFKA_CA_FILE": stack["DEVSTACK_TLS_CA"],
    }


CASES = {
    # Kafka SASL_SSL with SCRAM-SHA-512; Elasticsearch over HTTPS with basic auth.
    "scram+basic": lambda s: {
        **sasl(s, "SCRAM-SHA-512"),
        "K8SEV_ES_URL": s["DEVSTACK_ELASTICSEARCH_HTTPS_URL"],
        "K8SEV_ES_USERNAME": s["DEVSTACK_SEARCH_USER"],
        "K8SEV_ES_PASSWORD_FILE": s["DEVSTACK_SEARCH_PASSWORD_FILE"],
        "K8SEV_ES_CA_CERTS": s["DEVSTACK_TLS_CA"],
    },
    # Kafka SASL_SSL with PLAIN; Elasticsearch over HTTPS with an API key.
    "plain+apikey": lambda s: {
        **sasl(s, "PLAIN"),
        "K8SEV_ES_URL": s["DEVSTACK_ELASTICSEARCH_HTTPS_URL"],
        "K8SEV_ES_API_KEY_FILE": s["DEVSTACK_SEARCH_API_KEY_FILE"],
        "K8SEV_ES_CA_CERTS": s["DEVSTACK_TLS_CA"],
    },
    # Kafka TLS with a client certificate; OpenSearch over HTTPS with the same client certificate.
    "client-certificates+opensearch": lambda s: {
        "K8SEV_BROKER": s["DEVSTACK_KAFKA_SSL_BOOTSTRAP"],
        "K8SEV_KAFKA_SECURITY_PROTOCOL": "SSL",
        "K8SEV_KAFKA_CA_FILE": s["DEVSTACK_TLS_CA"],
        "K8SEV_KAFKA_CERT_FILE": s["DEVSTACK_TLS_CLIENT_CERT"],
        "K8SEV_KAFKA_KEY_FILE": s["DEVSTACK_TLS_CLIENT_KEY"],
        "K8SEV_SEARCH_ENGINE": "opensearch",
        "K8SEV_ES_URL": s["DEVSTACK_OPENSEARCH_HTTPS_URL"],
        "K8SEV_ES_CA_CERTS": s["DEVSTACK_TLS_CA"],
        "K8SEV_ES_CLIENT_CERT": s["DEVSTACK_TLS_CLIENT_CERT"],
        "K8SEV_ES_CLIENT_KEY": s["DEVSTACK_TLS_CLIENT_KEY"],
    },
}


@pytest.mark.parametrize("case", sorted(CASES))
async def test_events_flow_over_secured_connections(
    case: str, make_worker: Any, stack: dict[str, str], es_client: Any, os_client: Any
) -> None:
    worker = make_worker(K8SEV_INGEST="false", **CASES[case](stack))
    await produce(stack["DEVSTACK_KAFKA_BOOTSTRAP"], worker.env["K8SEV_TOPIC"], 25)
    engine = os_client if "opensearch" in case else es_client
    docs = await asyncio.to_thread(wait_for_documents, engine, worker, 25)
    assert sorted(d["_id"] for d in docs) == sorted(f"s{i}:1" for i in range(25))
    log = worker.log.read_text()
    for secret in secrets_of(stack):
        assert secret not in log


def test_wrong_search_credentials_show_in_readiness_not_in_logs(make_worker: Any, stack: dict[str, str]) -> None:
    worker = make_worker(
        ready=False,
        K8SEV_INGEST="false",
        K8SEV_ES_URL=stack["DEVSTACK_ELASTICSEARCH_HTTPS_URL"],
        K8SEV_ES_USERNAME=stack["DEVSTACK_SEARCH_USER"],
        K8SEV_ES_PASSWORD="not-the-password",
        K8SEV_ES_CA_CERTS=stack["DEVSTACK_TLS_CA"],
    )

    def refused() -> dict[str, Any] | None:
        try:
            status, body = worker.get("/readyz")
        except OSError:
            return None
        checks = json.loads(body)["checks"] if status == 503 else {}
        search = checks.get("search", {})
        return search if "401" in search.get("detail", "") or "Authentication" in search.get("detail", "") else None

    search = wait.until("readiness to report the refused credentials", refused, timeout=60)
    assert search is not None
    assert search["ok"] is False
    assert "not-the-password" not in worker.log.read_text()
