"""The ingest agent: Kubernetes Events -> the raw topic, keyed by uid, value the Event JSON.

The blocking watch runs in threads (one per watched scope) and feeds a bounded queue; this task
drains it, applies the type/reason filters and produces. The raw value is the Event as the API
server returned it, ``managedFields`` dropped: the document the seed's Logstash pipeline reads.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from typing import Any

from kubernetes import client

from streams import events, logs, metrics
from streams.application import app, settings
from streams.kube_watch import EventWatcher, WatchItem, api_client
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


async def publish(event: dict[str, Any]) -> None:
    uid, _ = events.identity(event)
    if not uid:
        # Nothing from the API server lacks a uid; a proxy or a fake might.
        metrics.EVENTS_FILTERED.labels(filter="missing_uid").inc()
        logs.warning(log, "event_without_uid", name=(event.get("metadata") or {}).get("name"))
        return
    await raw_topic.send(key=uid.encode(), value=encode(event))
    summary = events.summary(event)
    metrics.EVENTS_INGESTED.labels(
        type=metrics.event_type_label(summary.type), namespace=metrics.namespace_label(summary.namespace)
    ).inc()
    when = events.event_time(event)
    if when is not None:
        metrics.INGEST_LAG.observe(max(0.0, time.time() - when.timestamp()))


async def drain(queue: asyncio.Queue[WatchItem]) -> None:
    while True:
        item = await queue.get()
        if item.event is None:
            continue
        dropped_by = keep(item.event)
        if dropped_by:
            metrics.EVENTS_FILTERED.labels(filter=dropped_by).inc()
            continue
        await publish(item.event)


@app.task
async def ingest() -> None:
    if not settings.ingest:
        logs.info(log, "ingest_disabled", reason="K8SEV_INGEST=false")
        return
    loop = asyncio.get_running_loop()
    queue: asyncio.Queue[WatchItem] = asyncio.Queue(maxsize=settings.ingest_queue)
    api = client.CoreV1Api(api_client(settings.kubeconfig))
    scopes: list[str | None] = list(settings.namespaces) or [None]
    watchers = [
        EventWatcher(
            api,
            queue,
            loop,
            namespace=scope,
            page_size=settings.list_page_size,
            watch_timeout=settings.watch_timeout,
            idle_timeout=settings.watch_idle_timeout,
        )
        for scope in scopes
    ]
    # A pool of our own: the watch threads block for minutes and must not starve the default executor.
    pool = ThreadPoolExecutor(max_workers=len(watchers), thread_name_prefix="k8s-watch")
    threads = [loop.run_in_executor(pool, w.run) for w in watchers]
    logs.info(log, "ingest_started", scopes=",".join(w.scope for w in watchers), at=datetime.now(UTC).isoformat())
    try:
        await drain(queue)
    finally:
        for watcher in watchers:
            watcher.stop()
        await asyncio.gather(*threads, return_exceptions=True)
        pool.shutdown(wait=False)
