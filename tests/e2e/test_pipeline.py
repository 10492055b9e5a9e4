"""The whole pipeline on the real stack: API server -> Kafka -> worker -> Elasticsearch, views, metrics."""

from __future__ import annotations

import asyncio
import json
import time
from typing import Any

import pytest
from aiokafka import AIOKafkaConsumer
from elasticsearch import Elasticsearch
from kubernetes import client

from devstack import offsets, transient, wait
from devstack.worker import peer_env
from streams.core import events
from tests.e2e.helpers import create_event, documents, identity, metric, produce, repeat_event, wait_for_documents
from tests.fixtures.stack import unique_name

pytestmark = [pytest.mark.stack, pytest.mark.e2e, pytest.mark.slow]


def counts_total(worker: Any, namespace: str, window: str, extra: str = "") -> int:
    # An hour (or minute) boundary may fall inside the test: add the window before.
    total = 0
    for ago in (0, 1):
        status, body = worker.get(f"/counts/reasons/?window={window}&namespace={namespace}&ago={ago}{extra}")
        assert status == 200, body
        total += json.loads(body)["total"]
    return total


def test_events_are_indexed_once_per_version_and_counted(
    make_worker: Any, kube_client: client.ApiClient, namespace: str, es_client: Elasticsearch
) -> None:
    worker = make_worker(K8SEV_NAMESPACES=namespace)
    core = client.CoreV1Api(kube_client)
    started = time.monotonic()

    expected: set[str] = set()
    created = [create_event(core, namespace, f"ev-{i}", reason="Tested") for i in range(40)]
    expected |= {identity(e) for e in created}
    # Ten of them happen twice more (count 1 -> 3): new versions, two more occurrences each.
    warnings = [create_event(core, namespace, f"warn-{i}", reason="BackOff", type_="Warning") for i in range(10)]
    expected |= {identity(e) for e in warnings}
    for i in range(10):
        expected.add(identity(repeat_event(core, namespace, f"warn-{i}", 2)))
        expected.add(identity(repeat_event(core, namespace, f"warn-{i}", 3)))

    docs = wait_for_documents(es_client, worker, len(expected))
    elapsed = time.monotonic() - started
    ids = [d["_id"] for d in docs]
    assert sorted(ids) == sorted(expected), "every version exactly once, nothing else"
    for doc in docs:
        assert doc["cluster"] == "devstack"
        stamp = events.parse_time(doc["@timestamp"])
        assert stamp is not None and doc["_index"] == events.index_name(worker.index_prefix, stamp)
        assert "managedFields" not in doc["metadata"]
        assert doc["metadata"]["namespace"] == namespace

    # Occurrences: 40 events once, 10 events three times.
    assert wait.until("counts", lambda: counts_total(worker, namespace, "1h"), timeout=90, ready=lambda n: n == 70)
    assert counts_total(worker, namespace, "1m") == 70
    assert counts_total(worker, namespace, "1h", "&type=Warning") == 30
    status, body = worker.get(f"/counts/reasons/?window=1h&namespace={namespace}&type=Warning&top=1")
    assert status == 200
    assert [r["reason"] for r in json.loads(body)["reasons"]] == ["BackOff"]
    status, body = worker.get("/counts/kinds/?window=1h&kind=Pod")
    assert status == 200 and json.loads(body)["kinds"][0]["kind"] == "Pod"
    assert worker.get("/counts/reasons/?window=5m")[0] == 400

    status, body = worker.get("/metrics")
    text = body.decode()
    assert metric(text, "k8sev_events_ingested_total") == len(expected)
    assert metric(text, "k8sev_events_indexed_total") == len(expected)
    assert metric(text, "k8sev_event_occurrences_total", type="Warning") == 30
    assert metric(text, "k8sev_watch_up") == 1
    assert metric(text, "k8sev_bulk_request_duration_seconds_count") >= 1
    print(f"\n{len(expected)} versions searchable {elapsed:.1f}s after the first create")


async def consume_all(bootstrap: str, topic: str, count: int, within: float = 60) -> list[Any]:
    """At least ``count`` records of ``topic`` from its start (all that came in the last fetch)."""
    consumer = AIOKafkaConsumer(topic, bootstrap_servers=bootstrap, auto_offset_reset="earliest", group_id=None)
    await consumer.start()
    out: list[Any] = []

    async def fetch() -> list[Any]:
        for records in (await consumer.getmany(timeout_ms=500)).values():
            out.extend(records)
        return out

    try:
        await wait.until_async(f"{count} records on {topic}", fetch, timeout=within, interval=0,
                               ready=lambda got: len(got) >= count, not_yet=transient.kafka)  # fmt: skip
    finally:
        await consumer.stop()
    return out


@pytest.mark.parametrize("engine", ["elasticsearch", "opensearch"])
async def test_replays_are_dropped_and_bad_records_dead_lettered(
    make_worker: Any, stack: dict[str, str], es_client: Elasticsearch, os_client: Any, kafka_bootstrap: str, engine: str
) -> None:
    # No watch: this test writes the raw topic itself, as a re-sending producer or Logstash-era tool would.
    url = stack["DEVSTACK_OPENSEARCH_URL" if engine == "opensearch" else "DEVSTACK_ELASTICSEARCH_URL"]
    worker = make_worker(K8SEV_INGEST="false", K8SEV_SEARCH_ENGINE=engine, K8SEV_ES_URL=url)
    search = os_client if engine == "opensearch" else es_client
    raw, dead = worker.env["K8SEV_TOPIC"], worker.env["K8SEV_DEAD_LETTER_TOPIC"]

    def event(uid: str, rv: str, count: int = 1) -> bytes:
        stamp = "2026-01-02T03:04:05Z"
        body = {
            "metadata": {"uid": uid, "resourceVersion": rv, "namespace": "replay", "name": uid},
            "involvedObject": {"kind": "Pod", "name": uid},
            "reason": "Replayed", "type": "Normal", "count": count, "message": "ünïcödé ✓",
            "firstTimestamp": stamp, "lastTimestamp": stamp,
        }  # fmt: skip
        return json.dumps(body, ensure_ascii=False).encode()

    good = [(f"u{i}".encode(), event(f"u{i}", "10")) for i in range(20)]
    bad: list[tuple[bytes | None, bytes]] = [
        (b"x", b"not json"),
        (b"y", b'{"metadata": {"uid": "y", "resourceVersion": "1"'),
        (b"z", b'{"metadata": {"resourceVersion": "1"}}'),
        (b"w", b"\xff\xfe\xfa"),
        (b"v", event("v", "3").replace(b'"involvedObject": {"kind": "Pod", "name": "v"}', b'"involvedObject": "v"')),
        (b"h", event("h", "1").replace(b"\xc3\xbcn", b"x" * 1_000_100)),
    ]
    # Replays of the same versions, and an older version of u0, around the bad records.
    # Not a count (see docs/design.md): indexed with a null count, counted once; not a mapping rejection.
    junk_count = (b"n", event("n", "4").replace(b'"count": 1', b'"count": "many"'))
    await produce(kafka_bootstrap, raw, [*good, *bad, junk_count, *good, (b"u0", event("u0", "9"))])
    expected = {f"u{i}:10" for i in range(20)} | {"n:4"}
    docs = await asyncio.to_thread(wait_for_documents, search, worker, len(expected))
    letters = [json.loads(r.value) for r in await consume_all(kafka_bootstrap, dead, 6)]

    assert sorted(d["_id"] for d in docs) == sorted(expected)
    assert all(d["message"] == "ünïcödé ✓" for d in docs)
    assert sorted(letter["reason"] for letter in letters) == sorted(
        ["invalid_json", "invalid_json", "missing_uid", "invalid_utf8", "http_400", "too_large"]
    )
    by_reason = {letter["reason"]: letter for letter in letters}
    assert by_reason["invalid_utf8"]["encoding"] == "base64"
    assert by_reason["http_400"]["stage"] == "sink" and "involvedObject" in by_reason["http_400"]["detail"]
    assert next(d for d in docs if d["_id"] == "n:4")["count"] is None
    assert by_reason["missing_uid"]["original"] == '{"metadata": {"resourceVersion": "1"}}'
    huge = by_reason["too_large"]
    assert huge["truncated"] and huge["size"] > 1_000_000 and len(huge["original"]) == 256 * 1024

    _, body = worker.get("/metrics")
    text = body.decode()
    assert metric(text, "k8sev_dedup_dropped_total", verdict="duplicate") == 20
    assert metric(text, "k8sev_dedup_dropped_total", verdict="stale") == 1
    assert metric(text, "k8sev_events_rejected_total") == 6


def test_deployment_events_from_controllers_and_scheduler(
    make_worker: Any, kube_client: client.ApiClient, namespace: str, fake_node: str, es_client: Elasticsearch
) -> None:
    worker = make_worker(K8SEV_NAMESPACES=namespace)
    apps = client.AppsV1Api(kube_client)
    name = unique_name("web")
    labels = {"app": name}
    apps.create_namespaced_deployment(
        namespace,
        {
            "metadata": {"name": name},
            "spec": {
                "replicas": 2,
                "selector": {"matchLabels": labels},
                "template": {
                    "metadata": {"labels": labels},
                    "spec": {
                        "containers": [{"name": "nginx", "image": "nginx"}],
                        "nodeSelector": {"type": "kwok"},
                        "tolerations": [{"key": "kwok.x-k8s.io/node", "operator": "Exists", "effect": "NoSchedule"}],
                    },
                },
            },
        },
    )

    wait.until(
        "Scheduled, SuccessfulCreate and ScalingReplicaSet documents",
        lambda: {str(d.get("reason")) for d in documents(es_client, worker.index_prefix)},
        timeout=120,
        ready=lambda found: {"Scheduled", "SuccessfulCreate", "ScalingReplicaSet"} <= found,
        not_yet=transient.search,
    )
    scheduled = documents(es_client, worker.index_prefix, term={"reason": "Scheduled"})
    # The scheduler writes through events.k8s.io/v1: no lastTimestamp, time from eventTime.
    assert scheduled and all(d["lastTimestamp"] is None for d in scheduled)
    for doc in scheduled:
        event_time = events.parse_time(doc["eventTime"])
        assert event_time is not None
        assert events.parse_time(doc["@timestamp"]) == event_time.replace(
            microsecond=event_time.microsecond // 1000 * 1000
        )


def test_count_views_agree_on_every_worker(
    make_worker: Any, kube_client: client.ApiClient, namespace: str, es_client: Elasticsearch
) -> None:
    # Two workers share the tables' partitions; each answers for the whole table by asking the other.
    first = make_worker(K8SEV_NAMESPACES=namespace, K8SEV_SESSION_TIMEOUT="8s")
    second = make_worker(**peer_env(first.env, "second"))
    core = client.CoreV1Api(kube_client)
    for i in range(12):
        create_event(core, namespace, f"ev-{i}", reason=f"Reason{i % 4}", count=i + 1)
    expected = sum(range(1, 13))

    wait.until(
        "both workers to report every occurrence",
        lambda: [counts_total(w, namespace, "1h") for w in (first, second)],
        timeout=120,
        ready=lambda found: found == [expected, expected],
    )
    query = f"/counts/reasons/?window=1h&namespace={namespace}&scope=local"

    # Each worker counts only the partitions it actively owns (never a standby copy), so the local
    # shares add up to the total exactly. Polled: a rebalance may still be settling.
    wait.until(
        "the workers' local shares to add up to the total",
        lambda: [json.loads(w.get(query)[1])["total"] for w in (first, second)],
        timeout=60,
        ready=lambda local: sum(local) == expected,
    )
    _, body = second.get("/counts/kinds/?window=1h&kind=Pod")
    assert json.loads(body)["total"] >= expected


def test_retention_command_deletes_only_old_daily_indices(make_worker: Any, es_client: Elasticsearch) -> None:
    import subprocess
    import sys
    from datetime import UTC, datetime

    worker = make_worker(K8SEV_INGEST="false")
    prefix = worker.index_prefix
    today = datetime.now(UTC).strftime("%Y.%m.%d")
    for day in ("2020.01.01", "2020.01.02", today):
        es_client.indices.create(index=f"{prefix}-{day}")
    command = [sys.executable, "-m", "faust", "-A", "streams", "--loglevel", "info", "retention", "--days", "30"]
    dry = subprocess.run([*command, "--dry-run"], env=worker.env, capture_output=True, text=True, timeout=120)
    assert dry.returncode == 0, dry.stderr
    assert f"would delete 2 index(es): {prefix}-2020.01.01 {prefix}-2020.01.02" in dry.stdout
    done = subprocess.run(command, env=worker.env, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert sorted(es_client.indices.get(index=f"{prefix}-*")) == [f"{prefix}-{today}"]
    assert "event=retention_deleted" in done.stderr + done.stdout


async def test_offsets_are_committed_once_documents_are_indexed(
    make_worker: Any, es_client: Elasticsearch, kafka_bootstrap: str
) -> None:
    worker = make_worker(K8SEV_INGEST="false")
    records = []
    for i in range(30):
        body = {
            "metadata": {"uid": f"c{i}", "resourceVersion": "1", "namespace": "commit", "name": f"c{i}"},
            "reason": "Committed",
            "lastTimestamp": "2026-03-04T05:06:07Z",
        }
        records.append((f"c{i}".encode(), json.dumps(body).encode()))
    await produce(kafka_bootstrap, worker.raw_topic, records)
    await asyncio.to_thread(wait_for_documents, es_client, worker, 30)
    clean = worker.clean_topic
    # Every clean record was acknowledged by the sink, and committed.
    progress = await offsets.caught_up(kafka_bootstrap, worker.app_id, [clean], timeout=30)
    assert progress.end[clean] == 30
    assert progress.done
