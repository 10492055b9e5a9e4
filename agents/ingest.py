"""The ingest agent: Kubernetes Events -> the raw topic, keyed by uid, value the Event JSON.

Every worker with ``K8SEV_INGEST=true`` takes part in the election for the ingest Lease; only the
holder watches (see :mod:`streams.leader`). The holder resumes from the checkpoint stored in the
Lease, so a restart or a takeover re-sends only what the last leader had not yet checkpointed.
The raw value is the Event as the API server returned it, ``managedFields`` dropped: the document
the seed's Logstash pipeline reads.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import threading
import time
from typing import Any

import faust
from kubernetes import client

from streams import events, logs, metrics
from streams.filters import EventFilter
from streams.health import READINESS
from streams.ingest import Ingest
from streams.kube_watch import api_client
from streams.leader import Checkpoint, Elector
from streams.settings import Settings
from streams.topics import Topics

log = logging.getLogger(__name__)


class Publisher:
    """Hands one event to the producer of ``topic``; the returned future resolves when Kafka acknowledged it."""

    def __init__(self, topic: Any) -> None:
        self._topic = topic

    async def __call__(self, event: dict[str, Any]) -> asyncio.Future[Any] | None:
        uid, _ = events.identity(event)
        if not uid:
            # Nothing from the API server lacks a uid; a proxy or a fake might.
            metrics.EVENTS_FILTERED.labels(filter="missing_uid").inc()
            logs.warning(log, "event_without_uid", name=(event.get("metadata") or {}).get("name"))
            return None
        future: asyncio.Future[Any] = await self._topic.send(key=uid.encode(), value=events.encode_raw(event))
        summary = events.summary(event)
        metrics.by_type_and_namespace(metrics.EVENTS_INGESTED, summary.type, summary.namespace).inc()
        when = events.event_time(event)
        if when is not None:
            metrics.INGEST_LAG.observe(max(0.0, time.time() - when.timestamp()))
        return future


def install(app: faust.App, settings: Settings, topics: Topics) -> None:
    keep = EventFilter.of(settings.kube)
    publish = Publisher(topics.raw)

    def filtered(name: str) -> None:
        metrics.EVENTS_FILTERED.labels(filter=name).inc()

    async def ingest() -> None:
        if not settings.stages.ingest:
            logs.info(log, "ingest_disabled", reason="K8SEV_INGEST=false")
            return
        loop = asyncio.get_running_loop()
        api = api_client(settings.kube.kubeconfig)
        machinery = Ingest(settings, client.CoreV1Api(api), loop, publish)
        READINESS.set("ingest", True, "following")

        def started(checkpoint: Checkpoint) -> None:
            READINESS.set("ingest", True, "leading")
            loop.call_soon_threadsafe(machinery.start, checkpoint)

        def stopped() -> None:
            # Called on the elector's thread: stop the watch now, not when the loop gets to it.
            machinery.stop()
            READINESS.set("ingest", True, "following")
            READINESS.drop("watch[")
            logs.info(log, "watch_stopped_on_leadership_loss")

        lease = settings.lease
        elector = Elector(
            client.CoordinationV1Api(api),
            namespace=lease.namespace,
            name=lease.name,
            identity=lease.identity,
            lease_duration=lease.duration,
            renew_deadline=lease.renew_deadline,
            retry_period=lease.retry_period,
            on_started=started,
            on_stopped=stopped,
            current_checkpoint=machinery.tracker.checkpoint,
        )
        election = threading.Thread(target=elector.run, name="ingest-election", daemon=True)
        election.start()
        try:
            await machinery.drain(keep, filtered)
        finally:
            machinery.stop()
            # Let in-flight sends finish so the checkpoint the elector writes on release is current.
            with contextlib.suppress(Exception):
                await asyncio.wait_for(app.producer.flush(), timeout=10)
                machinery.settle_all()
            elector.stop()
            await asyncio.to_thread(election.join, lease.retry_period + 10)
            await machinery.close()

    app.task(ingest)
