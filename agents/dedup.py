"""The dedup agent: raw topic -> clean topic, each event version once; bad records -> dead letters."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Sequence
from typing import Any, Protocol, cast

import faust
from faust.types import EventT, StreamT

from streams.agents.counts import Counter
from streams.agents.current import processing
from streams.config.settings import Settings
from streams.core import events, letters, logs, metrics
from streams.core.records import CleanEvent, DeadLetter
from streams.core.topics import Topics
from streams.dedup.decide import Seen
from streams.dedup.transform import transform
from streams.tables.dedup import DedupMemory

log = logging.getLogger(__name__)


class Memory(Protocol):
    """What dedup needs of its table (:class:`streams.tables.dedup.DedupMemory`)."""

    def recall(self, uid: str) -> Seen | None: ...

    def remember(self, uid: str, delivered: Seen) -> None: ...


class Sends(Protocol):
    """Where dedup sends (:class:`streams.core.topics.Topics`): Faust topics, or a test's stand-ins."""

    @property
    def clean(self) -> Any: ...

    @property
    def dead_letter(self) -> Any: ...


class Dedup:
    """One raw record in, exactly one of: a clean record, a dead letter, or a drop as a known version.

    Nothing about one record stops the stream: any exception while decoding or transforming it
    dead-letters it as ``internal_error`` (with the exception's type), and the next record follows.
    Errors of Kafka itself are not the record's fault and are not caught here.
    """

    def __init__(self, topics: Sends, memory: Memory, counter: Counter | None = None) -> None:
        self._topics = topics
        self._memory = memory
        self._counter = counter

    async def reject(self, reason: str, detail: str, event: EventT) -> Awaitable[Any]:
        """Send ``event``'s dead letter; returns what resolves once Kafka acknowledged it."""
        message = event.message
        letter = letters.build(
            "dedup",
            reason,
            detail,
            value=message.value if isinstance(message.value, bytes) else None,
            key=message.key,
            topic=message.topic,
            partition=message.partition,
            offset=message.offset,
        )
        sent = await self._topics.dead_letter.send(key=event.message.key, value=DeadLetter.of(letter))
        metrics.EVENTS_REJECTED.labels(stage="dedup", reason=reason).inc()
        logs.warning(
            log,
            "record_rejected",
            stage="dedup",
            reason=reason,
            topic=letter.topic,
            partition=letter.partition,
            offset=letter.offset,
            detail=detail[:200],
        )
        return cast(Awaitable[Any], sent)

    async def process_batch(self, batch: Sequence[EventT]) -> None:
        """Handle a batch: send its clean records and letters, wait until Kafka acknowledged them all,
        and only then remember the delivered versions.

        Remembering last makes a crash at any point repeat versions (same document ids: harmless)
        rather than lose them: a version is known to dedup only once its clean record is in Kafka,
        whichever store keeps the table. Within the batch, what it delivers counts as known. The
        batch's occurrences are counted between the two, so a crash may count a version twice but
        never remembers one it did not count.
        """
        delivered: dict[str, tuple[EventT, Seen]] = {}
        cleans: list[CleanEvent] = []
        acks: list[Awaitable[Any]] = []
        for event in batch:
            with processing(event):  # the windowed table reads the event's own partition and time
                ack = await self._one(event, delivered, cleans)
            if ack is not None:
                acks.append(ack)
        await asyncio.gather(*acks)
        if self._counter is not None and cleans:
            self._counter.add(cleans, batch[-1])
        for uid, (event, seen) in delivered.items():
            with processing(event):
                self._memory.remember(uid, seen)

    async def process(self, event: EventT) -> None:
        """One record as a batch of its own."""
        await self.process_batch([event])

    async def _one(
        self, event: EventT, delivered: dict[str, tuple[EventT, Seen]], cleans: list[CleanEvent]
    ) -> Awaitable[Any] | None:
        try:
            outcome = self.transform(event.message.value, lambda uid: self._recall(uid, delivered))
        except events.RejectedRecord as exc:
            return await self.reject(exc.reason, exc.detail, event)
        except Exception as exc:  # noqa: BLE001 - one record's fault: its dead letter, and the stream goes on
            return await self.reject("internal_error", f"{type(exc).__name__}: {exc}", event)
        if isinstance(outcome, str):
            metrics.DEDUP_DROPPED.labels(verdict=outcome).inc()
            return None
        clean, count = outcome
        sent = await self._topics.clean.send(key=clean.uid.encode(), value=clean, force=True)
        delivered[clean.uid] = (event, Seen(clean.resource_version, count))
        cleans.append(clean)
        metrics.by_type_and_namespace(metrics.DEDUP_DELIVERED, clean.type, clean.namespace).inc()
        if clean.occurrences:
            metrics.by_type_and_namespace(metrics.OCCURRENCES, clean.type, clean.namespace).inc(clean.occurrences)
        return cast(Awaitable[Any], sent)

    def _recall(self, uid: str, delivered: dict[str, tuple[EventT, Seen]]) -> Seen | None:
        known = delivered.get(uid)
        return known[1] if known is not None else self._memory.recall(uid)

    def transform(self, value: Any, recall: Callable[[str], Seen | None] | None = None) -> tuple[CleanEvent, int] | str:
        """:func:`streams.dedup.transform.transform`, recalling from this stage's memory by default."""
        return transform(value, recall or self._memory.recall)


def install(
    app: faust.App, settings: Settings, topics: Topics, memory: DedupMemory, counter: Counter | None = None
) -> Any:
    """Register the dedup agent on the raw topic, counting what it delivers with ``counter``; returns
    it (for ``test_context()``)."""
    stage = Dedup(topics, memory, counter)

    async def dedup(stream: StreamT[bytes]) -> None:
        # Acknowledged by hand, after the batch is done: take_events() would acknowledge a batch
        # whose sends failed (in a finally), and its records would be lost.
        async for batch in stream.noack_take(settings.stages.dedup_batch, within=settings.stages.dedup_within):
            taken: list[EventT] = list(batch)
            await stage.process_batch(taken)
            for event in taken:
                await stream.ack(event)

    return app.agent(topics.raw, name="dedup")(dedup)
