"""Dedup's pure part around the decision: a raw value -> its clean record and count, or a verdict.

Decoding, the event's time and identity, the occurrence count, the decision
(:func:`streams.dedup.decide.decide`) against what ``recall`` remembers of the uid, and the clean
record's size cap. Nothing here sends, remembers or counts: the dedup agent does.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from typing import Any

from streams.core import events
from streams.core.records import CleanEvent
from streams.dedup.decide import Seen, decide


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


#: A clean record must fit in one Kafka record (the broker's default ``max.message.bytes`` is about
#: 1 MiB). Faust writes JSON with ``\\u`` escapes, so a raw record under the decode limit can come out
#: up to six times larger; only records that could, are measured.
CLEAN_RECORD_LIMIT = 1_000_000
_MAY_GROW_PAST_LIMIT = CLEAN_RECORD_LIMIT // 6 - 1024


def transform(value: Any, recall: Callable[[str], Seen | None]) -> tuple[CleanEvent, int] | str:
    """The clean record of a raw value and its count, or the verdict of a known version.

    Raises :class:`events.RejectedRecord` for a record that cannot become a document.
    """
    body = events.decode(value)
    when = events.event_time(body)
    if when is None:
        raise events.RejectedRecord("no_event_time", "none of the time fields parses as RFC 3339")
    uid, resource_version = identity = events.identity(body)
    count = events.occurrence_count(body)
    decision = decide(recall(uid), resource_version, count)
    if not decision.deliver:
        return decision.verdict
    clean = to_clean(body, decision.occurrences, when, identity)
    if len(value) > _MAY_GROW_PAST_LIMIT:
        size = len(clean.dumps())
        if size > CLEAN_RECORD_LIMIT:
            raise events.RejectedRecord("too_large", f"clean record {size} bytes, limit {CLEAN_RECORD_LIMIT}")
    return clean, count
