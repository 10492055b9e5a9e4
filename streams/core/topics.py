"""The topics of the data path: raw (the seed's ``k8s-event``), clean and dead-letter."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import faust

from streams.config.settings import Settings
from streams.core.records import CleanEvent, DeadLetter


@dataclass(frozen=True)
class Topics:
    #: The Event JSON keyed by uid, exactly the document the seed's Logstash reads.
    raw: faust.TopicT
    #: New versions only, keyed by uid (so co-partitioned with the raw topic).
    clean: faust.TopicT
    #: Records that cannot be indexed, with the reason and the original bytes.
    dead_letter: faust.TopicT


def declare(app: faust.App, settings: Settings) -> Topics:
    kafka = settings.kafka
    partitions = kafka.topic_partitions
    # The topics take records as large as the producer sends (streams.ingest.truncate fits Events under it).
    config = {"max.message.bytes": str(kafka.max_request_bytes)}

    def topic(name: str, value_type: type[Any], **serializers: str) -> faust.TopicT:
        return app.topic(
            name,
            key_type=bytes,
            value_type=value_type,
            key_serializer="raw",
            partitions=partitions,
            internal=True,
            config=config,
            **serializers,
        )

    return Topics(
        raw=topic(kafka.raw_topic, bytes, value_serializer="raw"),
        clean=topic(kafka.clean_topic, CleanEvent),
        dead_letter=topic(kafka.dead_letter_topic, DeadLetter),
    )
