"""The sink agent: clean topic -> daily indices, in bulk, offsets moved only after acknowledgement."""

from __future__ import annotations

import asyncio
import logging

import faust
from faust.types import EventT, StreamT

from streams.config.settings import Settings
from streams.core import events, letters, logs
from streams.core.health import Probes
from streams.core.records import CleanEvent, DeadLetter
from streams.core.topics import Topics
from streams.search.client import SearchClient
from streams.search.indexer import Abandoned, Indexer, Rejection

log = logging.getLogger(__name__)


def install(
    app: faust.App,
    settings: Settings,
    topics: Topics,
    stopping: asyncio.Event | None,
    health: Probes,
    client: SearchClient,
) -> None:
    """Register the sink agent, indexing through the worker's search ``client`` (the app closes it);
    ``stopping`` (set when the worker stops) ends its retrying; its readiness check goes to ``health``."""

    async def dead_letter(rejection: Rejection) -> None:
        item = rejection.event
        letter = letters.build(
            "sink",
            rejection.reason or f"http_{rejection.status}",
            rejection.error,
            # The Event as the raw topic carries it, so it can be fixed and produced there again.
            value=events.encode_json(item.event),
            key=str(item.uid),
            topic=settings.kafka.clean_topic,
        )
        # Awaited to the broker's acknowledgement: the batch is acked right after.
        key = (letter.key or "").encode("utf-8", "replace")
        await (await topics.dead_letter.send(key=key, value=DeadLetter.of(letter), force=True))
        logs.warning(
            log,
            "document_rejected",
            uid=letter.key,
            resource_version=str(item.resource_version)[:100],
            status=rejection.status,
            error=rejection.error[:300],
        )

    async def sink(stream: StreamT[CleanEvent]) -> None:
        indexer = Indexer(settings, client, dead_letter, stopping=stopping, health=health)
        taken: list[EventT] = []
        try:
            async for batch in stream.noack_take(settings.stages.bulk_size, within=settings.stages.bulk_within):
                taken = list(batch)  # noack_take yields events, not values
                await indexer.index([e.value for e in taken])
                for event in taken:
                    await stream.ack(event)
                taken = []
        except Abandoned as exc:
            # Not acknowledged, so not committed: the next owner of these partitions indexes them.
            logs.warning(log, "sink_batch_abandoned", documents=len(taken), reason=str(exc))

    app.agent(topics.clean, name="sink")(sink)
