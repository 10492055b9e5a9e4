"""What flows on the clean and dead-letter topics."""

from __future__ import annotations

import dataclasses
from typing import Any

import faust

from streams.core.letters import Letter


class CleanEvent(faust.Record, serializer="json", include_metadata=False):  # type: ignore[call-arg]
    """One new version of an event, keyed by uid on the clean topic."""

    uid: str
    resource_version: str
    #: Occurrences this version adds to the counts (growth of count/series.count).
    occurrences: int
    #: The event's own time (see streams.core.events.event_time), epoch seconds.
    time: float
    namespace: str
    type: str
    reason: str
    kind: str
    #: The Event, managedFields dropped.
    event: dict[str, Any]


class DeadLetter(faust.Record, serializer="json", include_metadata=False):  # type: ignore[call-arg]
    """A record that could not become a document, with why and the original bytes (see streams.core.letters)."""

    stage: str
    reason: str
    detail: str
    topic: str
    partition: int
    offset: int
    original: str
    encoding: str
    key: str | None = None
    size: int = 0
    sha256: str = ""
    truncated: bool = False

    @classmethod
    def of(cls, letter: Letter) -> DeadLetter:
        return cls(**dataclasses.asdict(letter))
