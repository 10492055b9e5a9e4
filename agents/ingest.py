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
import json
import logging
import threading
import time
from typing import Any

from kubernetes import client

from streams import events, logs, metrics
from streams.application import app, settings
from streams.health import READINESS
from streams.ingest import Ingest
from streams.kube_watch import api_client
from streams.leader import Checkpoint, Elector
from streams.topics import raw_topic

log = logging.getLogger("streams.ingest")


def keep(event: dict[str, Any]) -> str | None:
    """None to keep the event, else the name of the filter that drops it."""
    if settings.event_types and event.get("type") not in settings.event_types:
        return "type"
    reason = event.get("reason")
    if settings.include_reasons and reason not in settings.include_reasons:
        return "include_reason"
    if settings.exclude_reasons and reason in settings.exclude_reasons:
        return "exclude_reason"
    return None


def encode(event: dict[str, Any]) -> bytes:
    return json.dumps(events.strip_managed_fields(event), ensure_ascii=False, separators=(",", ":")).encode()


async def publish(event: dict[str, Any]) -> asyncio.Future[Any] | None:
    """Hand one event to the producer; the returned future resolves when Kafka acknowledged it."""
    uid, _ = events.identity(event)
    if not uid:
        # Nothing from the API server lacks a uid; a proxy or a fake might.
        metrics.EVENTS_FILTERED.labels(filter="missing_uid").inc()
        logs.warning(log, "event_without_uid", name=(event.get("metadata") or {}).get("name"))
        return None
    future: asyncio.Future[Any] = await raw_topic.send(key=uid.encode(), value=encode(event))
    summary = events.summary(event)
    metrics.by_type_and_namespace(metrics.EVENTS_INGESTED, summary.type, summary.namespace).inc()
    when = events.event_time(event)
    if when is not None:
        metrics.INGEST_LAG.observe(max(0.0, time.time() - when.timestamp()))
    return future


def _filtered(name: str) -> None:
    metrics.EVENTS_FILTERED.labels(filter=name).inc()


@app.task
async def ingest() -> None:
    if not settings.ingest:
        logs.info(log, "ingest_disabled", reason="K8SEV_INGEST=false")
        return
    loop = asyncio.get_running_loop()
    api = api_client(settings.kubeconfig)
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

    elector = Elector(
        client.CoordinationV1Api(api),
        namespace=settings.lease_namespace,
        name=settings.lease_name,
        identity=settings.identity,
        lease_duration=settings.lease_duration,
        renew_deadline=settings.lease_renew_deadline,
        retry_period=settings.lease_retry_period,
        on_started=started,
        on_stopped=stopped,
        current_checkpoint=machinery.tracker.checkpoint,
    )
    election = threading.Thread(target=elector.run, name="ingest-election", daemon=True)
    election.start()
    try:
        await machinery.drain(keep, _filtered)
    finally:
        machinery.stop()
        # Let in-flight sends finish so the checkpoint the elector writes on release is current.
        with contextlib.suppress(Exception):
            await asyncio.wait_for(app.producer.flush(), timeout=10)
            machinery.settle_all()
        elector.stop()
        await asyncio.to_thread(election.join, settings.lease_retry_period + 10)
        await machinery.close()
