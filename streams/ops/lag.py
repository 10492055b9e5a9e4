"""Consumer lag: how many records of each topic a stage has not finished, on the partitions it owns.

A record is finished when the stage acknowledged it and the offset was committed (dedup once its
clean record is in Kafka, the sink once the engine took the document), so the lag counts what a
crash would make the next owner redo as well as what still waits. It is the end offset of each
owned partition less its committed offset (the log's start where nothing was committed yet), summed
per topic: the same number ``kafka-consumer-groups.sh --describe`` shows, without a second client.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping

#: (topic, partition), as Faust's and aiokafka's ``TopicPartition`` unpack.
Partition = tuple[str, int]


def records_behind(
    topics: Iterable[str],
    ends: Mapping[Partition, int],
    committed: Mapping[Partition, int | None],
    starts: Mapping[Partition, int],
) -> dict[str, int]:
    """Per topic of ``topics``, the records after the committed offsets of the partitions in ``ends``.

    ``ends`` holds the partitions this worker owns now (none of a topic: 0 for it); ``committed``
    their committed offsets (None or absent: nothing committed, count from ``starts``). An end
    below the committed offset (the topic was deleted and made again) counts as no lag.
    """
    behind = dict.fromkeys(topics, 0)
    for partition, end in ends.items():
        topic = partition[0]
        if topic not in behind:
            continue
        done = committed.get(partition)
        if done is None:
            done = starts.get(partition, 0)
        behind[topic] += max(0, end - done)
    return behind


def uncommitted(owned: Iterable[Partition], committed: Mapping[Partition, int | None]) -> list[Partition]:
    """The owned partitions with no committed offset: where the log's start must be asked for."""
    return [partition for partition in owned if committed.get(partition) is None]
