"""Ingest's last step before Kafka: one Event -> one raw record, keyed by uid, cut to fit the producer's limit.

The value is the Event as the API server returned it, ``managedFields`` dropped (the document the
seed's Logstash pipeline reads); an Event over the limit is cut to fit (:mod:`streams.ingest.truncate`).
The topic is anything with Faust's ``send(key=, value=)``: the agent hands it the raw topic.
"""

from __future__ import annotations

import asyncio
import logging
import time
from typing import Any

from streams.config.settings import Settings
from streams.core import events, logs, metrics
from streams.ingest import truncate

log = logging.getLogger(__name__)


class Publisher:
    """Hands one event to the producer of ``topic``; the returned future resolves when Kafka acknowledged it.

    Nothing about one Event may stop ingestion: one over ``limit`` is cut to fit, one that cannot
    be encoded at all is logged and skipped (the checkpoint moves past it).
    """

    def __init__(self, topic: Any, limit: int) -> None:
        self._topic = topic
        self.limit = limit

    async def __call__(self, event: dict[str, Any]) -> asyncio.Future[Any] | None:
        uid, resource_version = events.identity(event)
        if not uid:
            # Nothing from the API server lacks a uid; a proxy or a fake might.
            metrics.EVENTS_FILTERED.labels(filter="missing_uid").inc()
            logs.warning(log, "event_without_uid", name=str((event.get("metadata") or {}).get("name"))[:253])
            return None
        try:
            fitted = truncate.fit(event, self.limit)
        except Exception as exc:  # noqa: BLE001 - one Event must never stop the watch
            metrics.EVENTS_UNPUBLISHABLE.inc()
            logs.error(log, "event_unpublishable", uid=uid, resource_version=resource_version, error=repr(exc)[:300])
            return None
        if fitted.marker is not None:
            metrics.EVENTS_TRUNCATED.inc()
            logs.warning(
                log,
                "event_truncated",
                uid=uid,
                resource_version=resource_version,
                original_bytes=fitted.marker["originalBytes"],
                bytes=len(fitted.value),
                fields=",".join(fitted.marker["fields"])[:300],
            )
        future: asyncio.Future[Any] = await self._topic.send(key=uid.encode(), value=fitted.value)
        summary = events.summary(event)
        metrics.by_type_and_namespace(metrics.EVENTS_INGESTED, summary.type, summary.namespace).inc()
        when = events.event_time(event)
        if when is not None:
            metrics.INGEST_LAG.observe(max(0.0, time.time() - when.timestamp()))
        return future


def record_limit(settings: Settings) -> int:
    """The raw value's budget: the producer's limit less headroom, and what dedup accepts."""
    return min(settings.kafka.max_request_bytes - truncate.HEADROOM, events.MAX_RECORD_BYTES)
