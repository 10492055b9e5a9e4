"""Bounded shutdown with the search engine down, and start-up against a frozen or stalling broker.

Like the other fault tests these stop and freeze servers of the stack they run on, and start them
again before they return: on a machine others share, run them on a stack of your own
(``DEVSTACK_STATE`` and every ``DEVSTACK_PORT_*``, see docs/design.md). Only Kafka and Elasticsearch are
started; the workers do not watch Kubernetes (``K8SEV_INGEST=false``), records are produced to the
raw topic directly.
"""

from __future__ import annotations

import asyncio
import contextlib
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


def test_start_up_rides_out_a_broker_that_stalls_again_right_after_answering_the_probe(
    own_stack: dict[str, str], start: Any
) -> None:
    """A broker just coming back may answer the probe and fail the very next call (seen: a metadata
    answer without brokers, then ``NodeNotReadyError`` from listing the topics, exit 1). That window
    is a few milliseconds on a quiet machine (the controller fences the resumed broker and unfences
    it 1-12 ms later), too short to aim at; so the broker is made to fail the next call on cue: it
    runs only while the worker is stopped, long enough to answer what the worker sent, until the
    probe is done; then it stays frozen for the worker's next call (listing the topics)."""
    kafka = process.read_pid("kafka")
    assert kafka is not None
    port = int(own_stack["DEVSTACK_KAFKA_BOOTSTRAP"].rsplit(":", 1)[1])
    broker = stack.select(["kafka"])[0]
    assert broker.name == "kafka"
    os.killpg(kafka, signal.SIGSTOP)
    try:
        worker = start(ready=False, K8SEV_KAFKA_STARTUP_TIMEOUT="3m")
        seen: set[int] = set()

        def new_call() -> int | None:
            # A connection of the worker's to the broker, not seen before, with a request unread.
            worker.check()
            pending = _broker_unread(port)
            fresh = [c for c in _worker_connections(worker.pid, port) if c not in seen and pending.get(c, 0) > 0]
            return fresh[0] if fresh else None

        probe = wait.until("the worker's probe waiting on the frozen broker", new_call, timeout=90, interval=0.02)
        assert probe is not None
        seen.add(probe)
        # The first resume, the worker stopped: the broker answers what is pending and settles (a
        # broker frozen longer than its session is fenced and unfenced within milliseconds).
        with _worker_stopped(worker):
            os.killpg(kafka, signal.SIGCONT)
            try:
                _wait_answered(worker, port, probe)
                # Its metadata may list no brokers for a moment (the window this test is about).
                wait.until("the resumed broker's metadata", broker.probe, timeout=30, interval=0.1, not_yet=_any)
                wait.holds("the resumed broker's metadata lists it", broker.probe, duration=1, interval=0.1)
            finally:
                os.killpg(kafka, signal.SIGSTOP)
        # Then the broker runs only while the worker is stopped: each request of the probe answered,
        # nothing else, until the probe's connection is closed (done).
        for _ in range(10):
            state = wait.until(
                "the worker's next request on the probe's connection, or the probe done",
                lambda: _next_on(worker, port, probe),
                timeout=10,
                interval=0.005,
            )
            if state == "closed":
                break
            with _worker_stopped(worker):
                os.killpg(kafka, signal.SIGCONT)
                try:
                    _wait_answered(worker, port, probe)
                finally:
                    os.killpg(kafka, signal.SIGSTOP)
        else:
            raise AssertionError("the probe made more than 10 requests on one connection")
        # The probe passed; the worker's next call meets the frozen broker.
        listing = wait.until("the worker's next call after the probe", new_call, timeout=30, interval=0.02)
        assert listing is not None

        def retried() -> list[dict[str, str]]:
            worker.check()
            return [e for e in worker.log_events("kafka_unreachable") if e.get("step") == "topics"]

        retries = wait.until("the topic listing failed and retried", retried, timeout=60)
        # Probes answer all through start-up, not only while the first step waits.
        assert _status(worker, "/healthz") == 200 and _status(worker, "/readyz") == 503
    finally:
        os.killpg(kafka, signal.SIGCONT)
    print(f"\nRETRIED step=topics attempt={retries[0]['attempt']} waited={retries[0]['waited']}s")
    worker.wait_ready(timeout=180)
    log = worker.log.read_text()
    assert "event=kafka_reachable" in log and "Traceback" not in log, worker.tail()
    assert worker.alive()


@contextlib.contextmanager
def _worker_stopped(worker: Worker) -> Iterator[None]:
    os.killpg(worker.pid, signal.SIGSTOP)
    try:
        yield
    finally:
        os.killpg(worker.pid, signal.SIGCONT)


def _wait_answered(worker: Worker, port: int, connection: int) -> None:
    """Until the broker read the request on ``connection`` and the (stopped) worker has its answer unread."""

    def answered() -> bool:
        return (
            _broker_unread(port).get(connection, 0) == 0
            and _worker_connections(worker.pid, port).get(connection, 0) > 0
        )

    wait.until(
        f"the broker's answer on connection {connection}",
        answered,
        timeout=15,
        interval=0.005,
        detail=lambda: f"worker: {_worker_connections(worker.pid, port)}; broker unread: {_broker_unread(port)}",
    )


def _next_on(worker: Worker, port: int, connection: int) -> str | None:
    worker.check()
    # The broker's side first: a connection the worker closes shows its FIN there as one unread byte,
    # and then no longer among the worker's.
    unread = _broker_unread(port).get(connection, 0)
    if connection not in _worker_connections(worker.pid, port):
        return "closed"
    return "request" if unread > 0 else None


def _sockets(pid: int) -> set[int]:
    inodes = set()
    for fd in Path(f"/proc/{pid}/fd").iterdir():
        with contextlib.suppress(OSError):
            target = os.readlink(fd)
            if target.startswith("socket:["):
                inodes.add(int(target[8:-1]))
    return inodes


def _tcp() -> Iterator[tuple[int, int, str, int, int]]:
    """(local port, remote port, state, bytes received and unread, inode) of every loopback TCP socket."""
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        for line in Path(table).read_text().splitlines()[1:]:
            fields = line.split()
            local, remote, state, queues, inode = fields[1], fields[2], fields[3], fields[4], fields[9]
            unread = int(queues.split(":")[1], 16)
            yield int(local.rsplit(":", 1)[1], 16), int(remote.rsplit(":", 1)[1], 16), state, unread, int(inode)


_ESTABLISHED, _CLOSE_WAIT = "01", "08"


def _worker_connections(pid: int, port: int) -> dict[int, int]:
    """The worker's open connections to the broker: {its local port: bytes of the broker's unread by it}."""
    mine = _sockets(pid)
    return {lp: unread for lp, rp, st, unread, inode in _tcp() if rp == port and st == _ESTABLISHED and inode in mine}


def _broker_unread(port: int) -> dict[int, int]:
    """The broker's side of its client connections: {client's port: bytes the broker has not read}."""
    return {rp: unread for lp, rp, st, unread, _ in _tcp() if lp == port and st in (_ESTABLISHED, _CLOSE_WAIT)}


def _any(_: Exception) -> bool:
    return True


def _status(worker: Worker, path: str) -> int:
    try:
        return int(worker.get(path, timeout=1)[0])
    except OSError:
        return 0
