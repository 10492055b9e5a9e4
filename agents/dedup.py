"""The dedup agent: raw topic -> clean topic, each event version once; bad records -> dead letters."""

from __future__ import annotations

import base64
import hashlib
import logging
from datetime import datetime
from typing import Any

from faust.types import EventT, StreamT

from streams import events, logs, metrics
from streams.application import app
from streams.dedup import Seen, decide
from streams.records import MAX_ORIGINAL_BYTES, CleanEvent, DeadLetter
from streams.tables.dedup import recall, remember
from streams.topics import clean_topic, dead_letter_topic, raw_topic

log = logging.getLogger("streams.dedup")


def dead_letter(stage: str, reason: str, detail: str, event: EventT) -> DeadLetter:
    message = event.message
    raw = message.value if isinstance(message.value, bytes) else b""
    kept = raw[:MAX_ORIGINAL_BYTES]
    try:
        original, encoding = kept.decode("utf-8"), "utf-8"
    except UnicodeDecodeError as exc:
        # A cut in the middle of a character is not invalid UTF-8 in the original.
        if len(kept) < len(raw) and exc.start >= len(kept) - 3:
            original, encoding = kept[: exc.start].decode("utf-8", "replace"), "utf-8"
        else:
            original, encoding = base64.b64encode(kept).decode("ascii"), "base64"
    key = message.key
    return DeadLetter(
        stage=stage,
        reason=reason,
        detail=detail[:2000],
        topic=message.topic,
        partition=message.partition,
        offset=message.offset,
        original=original,
        encoding=encoding,
        key=key.decode("utf-8", "replace") if isinstance(key, bytes) else None,
        size=len(raw),
        sha256=hashlib.sha256(raw).hexdigest(),
        truncated=len(kept) < len(raw),
    )


async def reject(stage: str, reason: str, detail: str, event: EventT) -> None:
    letter = dead_letter(stage, reason, detail, event)
    await dead_letter_topic.send(key=event.message.key, value=letter)
    metrics.EVENTS_REJECTED.labels(stage=stage, reason=reason).inc()
    logs.warning(
        log,
        "record_rejected",
        stage=stage,
        reason=reason,
        topic=letter.topic,
        partition=letter.partition,
        offset=letter.offset,
        detail=detail[:200],
    )


def to_clean(
    event: dict[str, Any],
    occurrences: int,
    when: datetime | None = None,
    identity: tuple[str, str] | None = None,
) -> CleanEvent:
    """The clean record of ``event``; ``when`` and ``identity`` save parsing them again."""
    uid, resource_version = identity or events.identity(event)
    if when is None:
        when = events.event_time(event)
    summary = events.summary(event)
    return CleanEvent(
        uid=uid,
        resource_version=resource_version,
        occurrences=occurrences,
        time=when.timestamp() if when else 0.0,
        namespace=summary.namespace,
        type=summary.type,
        reason=summary.reason,
        kind=summary.kind,
        event=events.strip_managed_fields(event),
    )


async def process(event: EventT) -> None:
    try:
        body = events.decode(event.message.value)
    except events.RejectedRecord as exc:
        await reject("dedup", exc.reason, exc.detail, event)
        return
    when = events.event_time(body)
    if when is None:
        await reject("dedup", "no_event_time", "none of the time fields parses as RFC 3339", event)
        return
    uid, resource_version = identity = events.identity(body)
    count = events.occurrence_count(body)
    decision = decide(recall(uid), resource_version, count)
    if not decision.deliver:
        metrics.DEDUP_DROPPED.labels(verdict=decision.verdict).inc()
        return
    clean = to_clean(body, decision.occurrences, when, identity)
    # Sent before the table remembers it, so a crash in between repeats the version (harmless:
    # same document id) rather than losing it.
    await clean_topic.send(key=uid.encode(), value=clean, force=True)
    remember(uid, Seen(resource_version, count))
    metrics.by_type_and_namespace(metrics.DEDUP_DELIVERED, clean.type, clean.namespace).inc()
    if decision.occurrences:
        metrics.by_type_and_namespace(metrics.OCCURRENCES, clean.type, clean.namespace).inc(decision.occurrences)


@app.agent(raw_topic)
async def dedup(stream: StreamT[bytes]) -> None:
    async for event in stream.events():
        await process(event)
