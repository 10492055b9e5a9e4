"""What flows on the clean topic: the Event as the API returned it, plus dedup's verdict."""

from __future__ import annotations

from typing import Any

import faust


class CleanEvent(faust.Record, serializer="json", include_metadata=False):  # type: ignore[call-arg]
    """One new version of an event, keyed by uid on the clean topic."""

    uid: str
    resource_version: str
    #: Occurrences this version adds to the counts (growth of count/series.count).
    occurrences: int
    #: The event's own time (see streams.events.event_time), epoch seconds.
    time: float
    namespace: str
    type: str
    reason: str
    kind: str
    #: The Event, managedFields dropped.
    event: dict[str, Any]


#: Kafka refuses records over about 1 MB by default; a letter must fit with room to spare.
MAX_ORIGINAL_BYTES = 256 * 1024


class DeadLetter(faust.Record, serializer="json", include_metadata=False):  # type: ignore[call-arg]
    """A record that could not become a document, with why and the original bytes."""

    stage: str
    reason: str
    detail: str
    topic: str
    partition: int
    offset: int
    #: The original value: UTF-8 text when it decodes, else base64 (see ``encoding``), cut to
    #: :data:`MAX_ORIGINAL_BYTES` (``truncated``) so the letter itself fits in a Kafka record.
    original: str
    encoding: str
    key: str | None = None
    size: int = 0
    sha256: str = ""
    truncated: bool = False
