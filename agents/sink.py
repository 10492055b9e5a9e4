"""The sink agent: clean topic -> daily indices, in bulk, offsets moved only after acknowledgement."""

from __future__ import annotations

import json
import logging

import faust
from faust.types import EventT, StreamT

from streams import letters, logs
from streams.records import CleanEvent, DeadLetter
from streams.search import SearchClient
from streams.settings import Settings
from streams.sink import Indexer, Rejection
from streams.topics import Topics

log = logging.getLogger(__name__)


def install(app: faust.App, settings: Settings, topics: Topics) -> None:
    async def dead_letter(rejection: Rejection) -> None:
        item = rejection.event
        letter = letters.build(
            "sink",
            f"http_{rejection.status}",
            rejection.error,
            # The Event as the raw topic carries it, so it can be fixed and produced there again.
            value=json.dumps(item.event, ensure_ascii=False, separators=(",", ":")).encode(),
            key=item.uid,
            topic=settings.kafka.clean_topic,
        )
        # Awaited to the broker's acknowledgement: the batch is acked right after.
        await (await topics.dead_letter.send(key=item.uid.encode(), value=DeadLetter.of(letter), force=True))
        logs.warning(
            log,
            "document_rejected",
            uid=item.uid,
            resource_version=item.resource_version,
            status=rejection.status,
            error=rejection.error[:300],
        )

    async def sink(stream: StreamT[CleanEvent]) -> None:
        client = SearchClient(settings)
        indexer = Indexer(settings, client, dead_letter)
        try:
            async for batch in stream.noack_take(settings.stages.bulk_size, within=settings.stages.bulk_within):
                taken: list[EventT] = list(batch)  # noack_take yields events, not values
                await indexer.index([e.value for e in taken])
                for event in taken:
                    await stream.ack(event)
        finally:
            await client.close()

    app.agent(topics.clean, name="sink")(sink)
