"""Fault injection on the real stack: nothing lost, nothing doubled, or the gap reported.

Each case runs the event generator (the ledger) while it breaks something on purpose, then
compares every version the API server confirmed with the documents in Elasticsearch. Each prints
one ``LEDGER`` line with its figures (run with ``-s`` to see them).
"""

from __future__ import annotations

import asyncio
import base64
import json
import random
import time
import urllib.request
from typing import Any

import pytest
from aiokafka import AIOKafkaConsumer
from elasticsearch import Elasticsearch
from kubernetes import client

from devstack import ports, process, stack
from tests.e2e.helpers import create_event, metric, wait_for
from tests.faults.ledger import Generator, settle, superseded

pytestmark = [pytest.mark.stack, pytest.mark.faults, pytest.mark.slow]

#: Short lease and session timings so each kill costs seconds, not a minute.
FAST = {
    "K8SEV_LEASE_DURATION": "6s",
    "K8SEV_LEASE_RENEW_DEADLINE": "4s",
    "K8SEV_LEASE_RETRY_PERIOD": "1s",
    "K8SEV_SESSION_TIMEOUT": "8s",
}


def restart_server(name: str, down_for: float = 0.0) -> None:
    servers = [s for s in stack.all_servers() if s.name == name]
    stack.down(servers)
    time.sleep(down_for)
    stack.up(servers)


async def raw_resends(bootstrap: str, topic: str) -> tuple[int, int]:
    """(records, distinct versions) on the raw topic: the difference was sent more than once."""
    consumer = AIOKafkaConsumer(topic, bootstrap_servers=bootstrap, auto_offset_reset="earliest", group_id=None)
    await consumer.start()
    seen: list[str] = []
    try:
        idle = 0
        while idle < 3:
            batch = await consumer.getmany(timeout_ms=1000)
            idle = 0 if batch else idle + 1
            for records in batch.values():
                for record in records:
                    meta = json.loads(record.value)["metadata"]
                    seen.append(f"{meta['uid']}:{meta['resourceVersion']}")
    finally:
        await consumer.stop()
    return len(seen), len(set(seen))


async def test_worker_killed_nine_times_five_times(
    make_worker: Any, kube_client: client.ApiClient, namespace: str, es_client: Elasticsearch, kafka_bootstrap: str
) -> None:
    worker = make_worker(K8SEV_NAMESPACES=namespace, **FAST)
    generator = Generator(client.CoreV1Api(kube_client), namespace, rate=20).start()
    chaos = random.Random(11)
    downtime = []
    for _ in range(5):
        await asyncio.sleep(chaos.uniform(4, 12))
        worker.kill()
        started = time.monotonic()
        await asyncio.to_thread(worker.restart)
        downtime.append(time.monotonic() - started)
    await asyncio.sleep(5)
    figures = await asyncio.to_thread(settle, generator, es_client, worker.index_prefix)
    records, distinct = await raw_resends(kafka_bootstrap, worker.env["K8SEV_TOPIC"])
    figures.extra.update(kills=5, raw_records=records, raw_resent=records - distinct, restart_s=f"{max(downtime):.1f}")
    print("\n" + figures.line("kill9x5"))
    assert figures.lost == 0, worker.tail()
    assert figures.unexpected == 0


def test_kafka_broker_restart(
    make_worker: Any, kube_client: client.ApiClient, namespace: str, es_client: Elasticsearch
) -> None:
    worker = make_worker(K8SEV_NAMESPACES=namespace, **FAST)
    generator = Generator(client.CoreV1Api(kube_client), namespace, rate=20).start()
    time.sleep(5)
    restart_server("kafka", down_for=5)
    time.sleep(10)
    figures = settle(generator, es_client, worker.index_prefix)
    figures.extra["generator_errors"] = generator.errors
    print("\n" + figures.line("kafka_restart"))
    assert figures.lost == 0, worker.tail()
    assert figures.unexpected == 0


def test_elasticsearch_down_for_two_minutes(
    make_worker: Any, kube_client: client.ApiClient, namespace: str, es_client: Elasticsearch
) -> None:
    worker = make_worker(K8SEV_NAMESPACES=namespace, **FAST)
    generator = Generator(client.CoreV1Api(kube_client), namespace, rate=20).start()
    time.sleep(3)
    baseline_rss = worker.rss_bytes()
    process.stop("elasticsearch")
    outage_started = time.monotonic()
    peak_rss, not_ready_seen = baseline_rss, False
    while time.monotonic() - outage_started < 120:
        peak_rss = max(peak_rss, worker.rss_bytes())
        status, _ = worker.get("/readyz")
        not_ready_seen = not_ready_seen or status == 503
        time.sleep(1)
    stack.up([s for s in stack.all_servers() if s.name == "elasticsearch"])
    backlog_started = time.monotonic()
    figures = settle(generator, es_client, worker.index_prefix)
    figures.extra.update(
        rss_before_mb=round(baseline_rss / 2**20),
        rss_peak_mb=round(peak_rss / 2**20),
        catch_up_s=round(time.monotonic() - backlog_started, 1),
    )
    print("\n" + figures.line("elasticsearch_outage_120s"))
    assert not_ready_seen, "readiness must report the outage"
    assert worker.get("/readyz")[0] == 200
    assert figures.lost == 0, worker.tail()
    assert figures.unexpected == 0


def test_api_server_restart(
    make_worker: Any, kube_client: client.ApiClient, namespace: str, es_client: Elasticsearch
) -> None:
    worker = make_worker(K8SEV_NAMESPACES=namespace, **FAST)
    generator = Generator(client.CoreV1Api(kube_client), namespace, rate=20).start()
    time.sleep(5)
    restart_server("kube-apiserver")
    time.sleep(10)
    figures = settle(generator, es_client, worker.index_prefix)
    text = worker.metrics()
    figures.extra.update(
        generator_errors=generator.errors,
        # The lease cannot be renewed while the API server is away: the watch stops and resumes
        # from the checkpoint when leadership is regained.
        leadership_acquired=int(metric(text, "k8sev_ingest_leadership_acquired_total")),
    )
    print("\n" + figures.line("apiserver_restart"))
    assert figures.extra["leadership_acquired"] >= 2
    assert figures.lost == 0, worker.tail()
    assert figures.unexpected == 0


def etcd_compact() -> int:
    """Compact etcd at its current revision: every older resourceVersion is now 410 Gone."""
    base = f"http://127.0.0.1:{ports.port('ETCD')}/v3/kv"

    def post(path: str, body: dict[str, Any]) -> dict[str, Any]:
        request = urllib.request.Request(f"{base}/{path}", data=json.dumps(body).encode(), method="POST")
        with urllib.request.urlopen(request, timeout=10) as resp:
            return dict(json.loads(resp.read()))

    revision = int(post("range", {"key": base64.b64encode(b"\0").decode()})["header"]["revision"])
    post("compaction", {"revision": str(revision), "physical": True})
    return revision


def test_forced_410_relists_and_reports_the_possible_gap(
    make_worker: Any, kube_client: client.ApiClient, namespace: str, es_client: Elasticsearch
) -> None:
    core = client.CoreV1Api(kube_client)
    worker = make_worker(K8SEV_NAMESPACES=namespace, **FAST)
    generator = Generator(core, namespace, rate=20).start()
    time.sleep(5)
    generator.stop()
    worker.stop()  # graceful: the final checkpoint is written and the lease released
    before = set(generator.versions)
    # Events that happen while nobody watches; then the checkpoint is compacted away.
    generator.start()
    time.sleep(4)
    generator.stop()
    # The relist sees only the newest version of each event; the ones in between are gone
    # (their occurrences are not: the newest count carries them).
    gone_with_the_history = superseded(generator.versions - before)
    revision = etcd_compact()
    # Restart believing events live 3 s: the 4 s+ pause must be reported as a possible loss.
    worker.env["K8SEV_EVENT_TTL"] = "3s"
    worker.restart()
    generator.start()
    time.sleep(5)
    figures = settle(generator, es_client, worker.index_prefix, unrecoverable=gone_with_the_history)
    text = worker.metrics()
    figures.extra.update(
        superseded_in_gap=len(gone_with_the_history),
        compacted_at=revision,
        gone=int(metric(text, "k8sev_watch_restarts_total", cause="gone")),
        relists=int(metric(text, "k8sev_watch_relists_total")),
        dedup_dropped=int(metric(text, "k8sev_dedup_dropped_total")),
        possible_loss=int(metric(text, "k8sev_watch_possible_loss_total")),
    )
    print("\n" + figures.line("forced_410"))
    assert figures.extra["gone"] >= 1
    assert figures.extra["possible_loss"] == 1
    assert "event=possible_event_loss" in worker.log.read_text()
    # Everything still in the API server was relisted: nothing lost, and dedup dropped the repeats.
    assert figures.lost == 0, worker.tail()
    assert figures.unexpected == 0
    assert figures.extra["dedup_dropped"] > 0


def leader_of(workers: list[Any]) -> Any | None:
    for worker in workers:
        text = worker.metrics()
        if metric(text, "k8sev_ingest_leader") == 1 and metric(text, "k8sev_watch_up") == 1:
            return worker
    return None


def test_leader_failover_with_two_workers(
    make_worker: Any, kube_client: client.ApiClient, namespace: str, es_client: Elasticsearch
) -> None:
    # Default lease timings (15 s): the takeover time is the one operators get.
    first = make_worker(K8SEV_NAMESPACES=namespace, K8SEV_SESSION_TIMEOUT="8s")
    second = make_worker(**{**first.env, "K8SEV_WEB_PORT": str(first.port + 1), "K8SEV_IDENTITY": "second"})
    workers = [first, second]
    leader = wait_for("a leader", lambda: leader_of(workers), timeout=60)
    follower = second if leader is first else first
    assert metric(follower.metrics(), "k8sev_ingest_leader") == 0
    generator = Generator(client.CoreV1Api(kube_client), namespace, rate=20).start()
    time.sleep(5)
    leader.kill()
    killed = time.monotonic()
    wait_for("the follower to take over", lambda: leader_of([follower]), timeout=60, interval=0.2)
    takeover = time.monotonic() - killed
    time.sleep(5)
    figures = settle(generator, es_client, follower.index_prefix)
    figures.extra["takeover_s"] = round(takeover, 1)
    print("\n" + figures.line("leader_failover"))
    assert takeover < 30
    assert figures.lost == 0, follower.tail()
    assert figures.unexpected == 0


def test_a_leader_that_cannot_renew_stops_watching(
    make_worker: Any, kube_client: client.ApiClient, namespace: str
) -> None:
    worker = make_worker(K8SEV_NAMESPACES=namespace, **FAST)
    wait_for("leadership", lambda: leader_of([worker]), timeout=30)
    # Someone else takes the lease by force: the holder must notice and stop at once.
    coordination = client.CoordinationV1Api(kube_client)
    namespace_of_lease, name = "default", worker.env["K8SEV_APP_ID"] + "-ingest"
    lease = coordination.read_namespaced_lease(name, namespace_of_lease)
    lease.spec.holder_identity = "intruder"
    lease.spec.lease_duration_seconds = 3600
    coordination.replace_namespaced_lease(name, namespace_of_lease, lease)
    stolen = time.monotonic()
    wait_for("the watch to stop", lambda: metric(worker.metrics(), "k8sev_watch_up") == 0 or None, timeout=15)
    stopped_after = time.monotonic() - stolen
    assert metric(worker.metrics(), "k8sev_ingest_leader") == 0
    # No event written now reaches the raw topic through this worker.
    before = metric(worker.metrics(), "k8sev_events_ingested_total")
    create_event(client.CoreV1Api(kube_client), namespace, "after-loss")
    time.sleep(3)
    assert metric(worker.metrics(), "k8sev_events_ingested_total") == before
    print(f"\nLEDGER case=lease_stolen stopped_after_s={stopped_after:.1f}")
    assert stopped_after < float(FAST["K8SEV_LEASE_RETRY_PERIOD"].rstrip("s")) + 3
