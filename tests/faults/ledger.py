"""The ledger of a fault case: every (uid, resourceVersion) the API server produced, against the index.

A generator thread writes events into one namespace at a steady rate (new events, and repeats of
earlier ones, each write a new version) and records every version the API server confirmed. At the
end the ledger is compared with the documents: lost = confirmed but not indexed; unexpected =
indexed but never produced; re-deliveries = extra index operations on the same document (its
``_version`` above 1), which ids make harmless but which show how much was re-sent.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import random
import threading
import time
from dataclasses import dataclass, field
from typing import Any

from aiokafka import AIOKafkaConsumer
from kubernetes import client
from kubernetes.client.exceptions import ApiException

from devstack import offsets, transient, wait
from devstack.faults import ledger_line
from devstack.worker import Worker, metric
from tests.e2e.helpers import now_rfc3339, once_consumed


@dataclass
class Figures:
    produced: int
    indexed: int
    #: The versions written but never indexed.
    missing: set[str]
    unexpected: int
    redeliveries: int
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def lost(self) -> int:
        return len(self.missing)

    def line(self, case: str) -> str:
        """``LEDGER case=... produced=...``: what ``scripts/dev faults`` adds up (devstack.faults)."""
        counts = {"produced": self.produced, "indexed": self.indexed, "lost": self.lost,
                  "unexpected": self.unexpected, "redeliveries": self.redeliveries}  # fmt: skip
        return ledger_line(case, {**counts, **self.extra})


class Generator:
    """Writes events at ``rate`` per second until stopped; keeps the confirmed versions."""

    def __init__(self, core: client.CoreV1Api, namespace: str, rate: float = 20.0, seed: int = 7) -> None:
        self.core = core
        self.namespace = namespace
        self.rate = rate
        self.versions: set[str] = set()
        #: (monotonic time the write was sent, the version it made), in order.
        self.written: list[tuple[float, str]] = []
        self.errors = 0
        self._counts: dict[str, int] = {}
        self._random = random.Random(seed)
        self._serial = 0
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self) -> Generator:
        """Start (or resume) writing; the ledger carries on. Running already: nothing changes."""
        if self._thread is not None and self._thread.is_alive():
            return self
        self._stop.clear()
        self._thread = threading.Thread(target=self._run, name="event-generator", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(30)

    def _run(self) -> None:
        while not self._stop.is_set():
            started = time.monotonic()
            try:
                if self._counts and self._random.random() < 0.4:
                    name = self._random.choice(sorted(self._counts))
                    self._counts[name] += 1
                    made = self.core.patch_namespaced_event(
                        name, self.namespace, {"count": self._counts[name], "lastTimestamp": now_rfc3339()}
                    )
                else:
                    name = f"gen-{self._serial}"
                    self._serial += 1
                    made = self._create(name)
                    self._counts[name] = 1
                version = f"{made.metadata.uid}:{made.metadata.resource_version}"
                self.versions.add(version)
                self.written.append((started, version))
            except (ApiException, OSError, Exception):  # the API may be down on purpose
                self.errors += 1
                self._stop.wait(0.5)
            self._stop.wait(max(0.0, 1 / self.rate - (time.monotonic() - started)))

    def _create(self, name: str) -> Any:
        stamp = now_rfc3339()
        return self.core.create_namespaced_event(
            self.namespace,
            {
                "metadata": {"name": name, "namespace": self.namespace},
                "involvedObject": {"kind": "Pod", "namespace": self.namespace, "name": f"{name}-pod"},
                "reason": "FaultCase",
                "message": "written by the fault-injection ledger",
                "type": "Normal",
                "count": 1,
                "firstTimestamp": stamp,
                "lastTimestamp": stamp,
            },
        )

    def wait_written(self, count: int, timeout: float = 180.0) -> None:
        """Until ``count`` versions are confirmed in all: the load runs for a number of writes, which
        a slow or restarting API server stretches, rather than for a number of seconds."""
        wait.until(f"{count} versions written", lambda: len(self.versions), timeout=timeout,
                   ready=lambda n: n >= count)  # fmt: skip

    def write_new(self) -> str:
        """One new event now, from the caller's thread while the generator is stopped; its version
        joins the ledger. A new event has no older version a relist could hide."""
        if self._thread is not None and self._thread.is_alive():
            raise RuntimeError("the generator is writing: stop it first")
        started = time.monotonic()
        name = f"gen-{self._serial}"
        self._serial += 1  # a retry after a lost answer takes a new name; reconcile() finds this one
        made = self._create(name)
        self._counts[name] = 1
        version = f"{made.metadata.uid}:{made.metadata.resource_version}"
        self.versions.add(version)
        self.written.append((started, version))
        return version

    def first_written_after(self, since: float) -> str | None:
        """The first version whose write was sent at ``since`` or later (None: none yet)."""
        return next((version for sent, version in list(self.written) if sent >= since), None)

    def reconcile(self) -> None:
        """Add the current version of every event: a write whose answer was lost did happen."""
        # Right after a fault the API server may still answer 5xx/429 or refuse connections.
        listed = wait.until(
            f"a LIST of {self.namespace}'s events",
            lambda: self.core.list_namespaced_event(self.namespace),
            timeout=60,
            not_yet=transient.kube,
        )
        for item in listed.items:
            self.versions.add(f"{item.metadata.uid}:{item.metadata.resource_version}")


def indexed_versions(engine: Any, prefix: str) -> dict[str, int]:
    """Document id -> ``_version`` for every document under ``<prefix>-*``."""
    engine.indices.refresh(index=f"{prefix}-*", allow_no_indices=True, ignore_unavailable=True)
    found = engine.search(
        index=f"{prefix}-*",
        body={"query": {"match_all": {}}, "size": 10_000, "version": True, "_source": False},
        allow_no_indices=True,
        ignore_unavailable=True,
    )
    return {hit["_id"]: int(hit.get("_version", 1)) for hit in found["hits"]["hits"]}


def is_indexed(engine: Any, prefix: str, version: str) -> bool:
    engine.indices.refresh(index=f"{prefix}-*", allow_no_indices=True, ignore_unavailable=True)
    found = engine.search(
        index=f"{prefix}-*",
        body={"query": {"ids": {"values": [version]}}, "size": 0},
        allow_no_indices=True,
        ignore_unavailable=True,
    )
    return int(found["hits"]["total"]["value"]) > 0


#: How long :func:`resume_seconds` waits; past it the case is stalled (``resume_s=inf``).
RESUME_TIMEOUT = 120.0


def resume_seconds(generator: Generator, engine: Any, prefix: str, since: float) -> float:
    """Seconds from ``since`` (the end of a fault) until the first version written after it is indexed:
    how long the pipeline took to deliver again. ``inf`` if that took over ``RESUME_TIMEOUT``; the
    ledger then counts what never arrived."""
    try:
        first = wait.until("a version written after the fault", lambda: generator.first_written_after(since),
                           timeout=RESUME_TIMEOUT, interval=0.05)  # fmt: skip
        assert first is not None
        remaining = max(1.0, RESUME_TIMEOUT - (time.monotonic() - since))
        wait.until(f"{first} indexed", lambda: is_indexed(engine, prefix, first), timeout=remaining, interval=0.2,
                   not_yet=transient.search)  # fmt: skip
    except wait.WaitTimeout:
        return float("inf")
    return time.monotonic() - since


def superseded(versions: set[str]) -> set[str]:
    """Of ``versions``, all but the newest of each uid: what a relist cannot show any more."""
    newest: dict[str, int] = {}
    for version in versions:
        uid, rv = version.split(":")
        newest[uid] = max(newest.get(uid, 0), int(rv))
    return {v for v in versions if int(v.split(":")[1]) < newest[v.split(":")[0]]}


def settle(generator: Generator, worker: Worker, engine: Any, timeout: float = 240.0,
           unrecoverable: set[str] | None = None) -> Figures:  # fmt: skip
    """Stop writing, then wait until the index holds every produced version; count the difference
    once the worker has consumed all its topics (so anything extra has arrived too).

    ``unrecoverable`` versions (superseded while a 410 forced a relist) are neither expected nor
    unexpected: the API server no longer has them.
    """
    generator.stop()
    generator.reconcile()
    expected = generator.versions - (unrecoverable or set())
    prefix = worker.index_prefix

    # Not fatal: what is still missing at the deadline is counted as lost below.
    with contextlib.suppress(wait.WaitTimeout):
        wait.until(
            f"all {len(expected)} versions indexed",
            lambda: set(indexed_versions(engine, prefix)),
            timeout=timeout,
            interval=2,
            ready=lambda found: expected <= found,
            not_yet=transient.search,
        )
    found = once_consumed(worker, lambda: indexed_versions(engine, prefix))
    return Figures(
        produced=len(expected),
        indexed=len(found),
        missing=expected - set(found),
        unexpected=len(set(found) - generator.versions),
        redeliveries=sum(v - 1 for v in found.values()),
    )


async def topic_versions(bootstrap: str, topic: str) -> list[str]:
    """Every ``uid:resourceVersion`` on ``topic``, read to its end, in offset order per partition.

    Raw records are Events (``metadata``), clean records carry ``uid`` and ``resource_version``."""
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False, group_id=None)
    await consumer.start()
    seen: list[str] = []
    try:
        tps = await offsets.partitions(consumer, topic)
        consumer.assign(tps)
        await consumer.seek_to_beginning(*tps)
        ends = await consumer.end_offsets(tps)

        async def at_end() -> bool:
            for records in (await consumer.getmany(timeout_ms=1000)).values():
                for record in records:
                    body = json.loads(record.value)
                    meta = body.get("metadata")
                    if isinstance(meta, dict):
                        seen.append(f"{meta.get('uid')}:{meta.get('resourceVersion')}")
                    else:
                        seen.append(f"{body.get('uid')}:{body.get('resource_version')}")
            return all([await consumer.position(tp) >= ends[tp] for tp in tps])

        await wait.until_async(f"{topic} read to its end", at_end, timeout=120, interval=0)
    finally:
        await consumer.stop()
    return seen


def where_lost(lost: set[str], produced: set[str], worker: Worker) -> str:
    """For a failure message: at which stage each lost version went missing, whether a newer version
    of the same event superseded it, and how often the worker listed and its watch expired."""
    bootstrap = worker.env["DEVSTACK_KAFKA_BOOTSTRAP"]
    raw_order = asyncio.run(topic_versions(bootstrap, worker.raw_topic))
    raw = set(raw_order)
    clean = set(asyncio.run(topic_versions(bootstrap, worker.clean_topic)))
    newer = superseded(produced)
    try:
        stale = metric(worker.metrics(), "k8sev_dedup_dropped_total", verdict="stale")
    except OSError:  # the worker is gone
        stale = float("nan")
    lines = [
        f"{len(lost)} lost; the worker listed {len(worker.log_events('list_done'))} times, "
        f"its watch expired (410) {len(worker.log_events('watch_expired'))} times, "
        f"its sends failed {len(worker.log_events('kafka_send_failed'))} times; "
        f"dedup dropped {stale:.0f} versions older than one it had delivered"
    ]
    for version in sorted(lost):
        stage = "dedup or sink" if version in raw else "ingest (never on the raw topic)"
        if version in clean:
            stage = "sink (on the clean topic)"
        lines.append(
            f"  {version}: lost in {stage}; superseded={version in newer}; "
            # Dedup drops a version older than one it delivered: a newer one first means a replay.
            f"newer version first on the raw topic={_newer_first(raw_order, version)}"
        )
    return "\n".join(lines)


def _newer_first(order: list[str], version: str) -> bool:
    """Whether a newer version of ``version``'s uid precedes its first copy in ``order`` (all of a
    uid's records share one partition, whose order ``order`` keeps)."""
    uid, rv = version.split(":")
    for seen in order:
        if seen == version:
            return False
        other_uid, other_rv = seen.split(":")
        if other_uid == uid and other_rv.isdigit() and int(other_rv) > int(rv):
            return True
    return False
