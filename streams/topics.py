"""The topics of the data path: raw (the seed's ``k8s-event``), clean and dead-letter."""

from __future__ import annotations

import faust

from streams.application import app, settings
from streams.records import CleanEvent, DeadLetter

#: The Event JSON keyed by uid, exactly the document the seed's Logstash reads.
raw_topic = app.topic(
    settings.raw_topic,
    key_type=bytes,
    value_type=bytes,
    key_serializer="raw",
    value_serializer="raw",
    partitions=settings.topic_partitions,
    internal=True,
)

#: New versions only, keyed by uid (so co-partitioned with the raw topic).
clean_topic = app.topic(
    settings.clean_topic,
    key_type=bytes,
    value_type=CleanEvent,
    key_serializer="raw",
    partitions=settings.topic_partitions,
    internal=True,
)

#: Records that cannot be indexed, with the reason and the original bytes.
dead_letter_topic = app.topic(
    settings.dead_letter_topic,
    key_type=bytes,
    value_type=DeadLetter,
    key_serializer="raw",
    partitions=settings.topic_partitions,
    internal=True,
)


def _repartition(suffix: str) -> faust.TopicT:
    # Named after the app id, like Faust's changelog topics, so two deployments sharing a Kafka
    # cluster (or two test workers) never read each other's repartitioned records.
    return app.topic(
        f"{settings.app_id}-{settings.clean_topic}-{suffix}-repartition",
        key_type=bytes,
        value_type=CleanEvent,
        key_serializer="raw",
        partitions=settings.topic_partitions,
        internal=True,
    )


#: The clean topic keyed by namespace, and by involved kind, for the count tables.
by_namespace_topic = _repartition("by-namespace")
by_kind_topic = _repartition("by-kind")
