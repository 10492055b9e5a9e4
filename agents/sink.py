"""The sink agent: clean topic -> daily indices, in bulk, offsets moved only after acknowledgement."""

from __future__ import annotations

import json
import logging

from faust.types import EventT, StreamT

from streams import logs
from streams.application import app, settings
from streams.records import CleanEvent, DeadLetter
from streams.search import SearchClient
from streams.sink import Indexer, Rejection
from streams.topics import clean_topic, dead_letter_topic

log = logging.getLogger("streams.sink")


async def dead_letter(rejection: Rejection) -> None:
    item = rejection.event
    letter = DeadLetter(
        stage="sink",
        reason=f"http_{rejection.status}",
        detail=rejection.error,
        topic=settings.clean_topic,
        partition=-1,
        offset=-1,
        # The Event as the raw topic carries it, so it can be fixed and produced there again.
        original=json.dumps(item.event, ensure_ascii=False, separators=(",", ":")),
        encoding="utf-8",
        key=item.uid,
    )
    # Awaited to the broker's acknowledgement: the batch is acked right after.
    await (await dead_letter_topic.send(key=item.uid.encode(), value=letter, force=True))
    logs.warning(
        log,
        "document_rejected",
        uid=item.uid,
        resource_version=item.resource_version,
        status=rejection.status,
        error=rejection.error[:300],
    )


@app.agent(clean_topic)
async def sink(stream: StreamT[CleanEvent]) -> None:
    client = SearchClient(settings)
    indexer = Indexer(settings, client, dead_letter)
    try:
        async for batch in stream.noack_take(settings.bulk_size, within=settings.bulk_within):
            taken: list[EventT] = list(batch)  # noack_take yields events, not values
            await indexer.index([e.value for e in taken])
            for event in taken:
                await stream.ack(event)
    finally:
        await client.close()
