"""Bounded shutdown with the search engine down, and start-up against a frozen broker.

Like the other fault tests these stop and freeze servers of the stack they run on, and start them
again before they return: on a machine others share, run them on a stack of your own
(``DEVSTACK_STATE`` and every ``DEVSTACK_PORT_*``, see docs/design.md). Only Kafka and Elasticsearch are
started; the workers do not watch Kubernetes (``K8SEV_INGEST=false``), records are produced to the
raw topic directly.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from elasticsearch import Elasticsearch

from devstack import process, stack, wait
from devstack.worker import Worker
from tests.e2e.helpers import documents, metric, produce
from tests.fixtures.worker import workers

pytestmark = [pytest.mark.stack, pytest.mark.faults, pytest.mark.slow]


@pytest.fixture(scope="module")
def own_stack(tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    servers = stack.select(["kafka", "elasticsearch"])
    stack.up(servers)
    placeholder = tmp_path_factory.mktemp("kube") / "kubeconfig"
    placeholder.write_text("")  # ingest is off: never read
    return {**stack.env(servers), "KUBECONFIG": str(placeholder), "DEVSTACK_OPENSEARCH_URL": "http://127.0.0.1:9"}


@pytest.fixture
def start(own_stack: dict[str, str], tmp_path: Path) -> Iterator[Any]:
    with workers(own_stack, tmp_path, K8SEV_INGEST="false") as make:
        yield make


def events(first: int, n: int) -> list[tuple[bytes, bytes]]:
    stamp = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
    out = []
    for i in range(first, first + n):
        body = {
            "metadata": {"uid": f"u{i}", "resourceVersion": "1", "namespace": "ns", "name": f"e{i}"},
            "involvedObject": {"kind": "Pod", "name": "p"},
            "reason": "Backlog",
            "type": "Normal",
            "count": 1,
            "lastTimestamp": stamp,
        }
        out.append((f"u{i}".encode(), json.dumps(body).encode()))
    return out


def doc_ids(es: Elasticsearch, prefix: str) -> set[str]:
    try:
        return {d["_id"] for d in documents(es, prefix)}
    except Exception:  # the engine is down or starting
        return set()


def test_sigterm_with_the_engine_down_exits_in_time_and_the_next_worker_indexes_the_backlog(
    own_stack: dict[str, str], start: Any
) -> None:
    es = Elasticsearch(own_stack["DEVSTACK_ELASTICSEARCH_URL"], request_timeout=30)
    engine = stack.select(["elasticsearch"])[-1:]
    assert engine[0].name == "elasticsearch"
    first = start(K8SEV_SHUTDOWN_TIMEOUT="20s")
    bootstrap, raw = own_stack["DEVSTACK_KAFKA_BOOTSTRAP"], first.env["K8SEV_TOPIC"]
    asyncio.run(produce(bootstrap, raw, events(0, 50)))
    wait.until("50 documents", lambda: len(doc_ids(es, first.index_prefix)) == 50, timeout=90)

    stack.down(engine)
    try:
        asyncio.run(produce(bootstrap, raw, events(50, 100)))
        wait.until("the sink failing", lambda: metric(first.metrics(), "k8sev_bulk_failures_total") > 0, timeout=60)
        began = time.monotonic()
        status, body = first.get("/healthz", timeout=1)
        assert (status, time.monotonic() - began < 1) == (200, True), body
        wait.until("/readyz 503", lambda: first.get("/readyz")[0] == 503, timeout=30)

        assert first.proc is not None
        began = time.monotonic()
        os.killpg(first.proc.pid, signal.SIGTERM)
        code = first.proc.wait(timeout=60)
        took = time.monotonic() - began
        print(f"\nSHUTDOWN exit={code} took={took:.1f}s")
        assert took < 20 and code == 0, first.tail()
        log = first.log.read_text()
        assert "event=shutdown_started" in log
        assert "event=sink_batch_abandoned" in log, first.tail()

        # The same app (group, topics, indices); the first left the group, so no session timeout to wait.
        shared = ("K8SEV_APP_ID", "K8SEV_TOPIC", "K8SEV_CLEAN_TOPIC", "K8SEV_DEAD_LETTER_TOPIC", "K8SEV_INDEX_PREFIX")
        same = {k: first.env[k] for k in shared}
        second = start(ready=False, **same)
    finally:
        stack.up(engine)
    engine_back = time.monotonic()
    wanted = {f"u{i}:1" for i in range(150)}
    wait.until("150 documents", lambda: doc_ids(es, first.index_prefix) >= wanted, timeout=120, interval=1)
    backlog = time.monotonic() - engine_back
    print(f"BACKLOG indexed {backlog:.1f}s after the engine came back")
    assert doc_ids(es, first.index_prefix) == wanted  # 0 lost, nothing else
    # Faster than the 30 s session timeout the group would wait for a worker that left without a word.
    assert backlog < 30
    assert second.proc is not None and second.proc.poll() is None


def test_start_up_with_the_broker_frozen_waits_with_probes_answering_then_runs(
    own_stack: dict[str, str], start: Any
) -> None:
    pid = process.read_pid("kafka")
    assert pid is not None
    os.killpg(pid, signal.SIGSTOP)
    try:
        worker = start(ready=False, K8SEV_KAFKA_STARTUP_TIMEOUT="3m")
        wait.until("/healthz 200 while Kafka is frozen", lambda: _status(worker, "/healthz") == 200, timeout=60)
        assert _status(worker, "/readyz") == 503
        wait.until("an attempt logged", lambda: "event=kafka_unreachable" in worker.log.read_text(), timeout=60)
    finally:
        os.killpg(pid, signal.SIGCONT)
    worker.wait_ready(timeout=180)
    log = worker.log.read_text()
    assert "event=kafka_reachable" in log and "Traceback" not in log, worker.tail()


def _status(worker: Worker, path: str) -> int:
    try:
        return int(worker.get(path, timeout=1)[0])
    except OSError:
        return 0
