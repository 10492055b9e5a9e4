"""Every use of Faust's, mode's and aiokafka's private surface, each in one small typed function.

Nothing here is Faust's public API: each name is held only by the version pin. Keeping them in one
module means a new Faust breaks one place, and ``tests/unit/test_faust_compat.py`` checks each name
against the installed packages, so the failure says which name moved. The methods the worker's
classes override (:data:`APP_OVERRIDES`, :data:`PRODUCER_OVERRIDES`) are checked there too: an
override of a method Faust renamed would silently never run.

It imports nothing of Faust's (the pure modules use it): each function reaches into the object it is handed.
"""

from __future__ import annotations

import operator
from collections.abc import Mapping, Sequence
from typing import Any

#: Private methods of ``faust.App`` that :class:`streams.pipeline.App` overrides, with their parameters.
APP_OVERRIDES: Mapping[str, Sequence[str]] = {
    # Bounded at shutdown (Faust's own wait has no bound).
    "_consumer_wait_empty": ("self", "consumer", "logger"),
    # The transports on the app's loop.
    "_new_transport": ("self",),
    "_new_producer_transport": ("self",),
}

#: Private methods of Faust's aiokafka ``Producer`` that :class:`streams.pipeline.App`'s producer overrides.
PRODUCER_OVERRIDES: Mapping[str, Sequence[str]] = {
    # Idempotence outside transactions.
    "_settings_extra": ("self",),
}


def unacked_count(consumer: Any) -> int:
    """How many records Faust's consumer handed to the streams that are not acknowledged yet."""
    return len(consumer._unacked_messages)


def forget_acked(consumer: Any) -> None:
    """Drop the acknowledged records from the consumer's unacknowledged set (Faust's own step in its wait)."""
    consumer._clean_unacked_messages()


def committed_offsets(consumer: Any) -> Mapping[Any, int | None]:
    """Faust's record of the offsets it committed (or found committed after a rebalance), by partition."""
    known: Mapping[Any, int | None] = consumer._committed_offset
    return known


def kafka_producer(producer: Any) -> Any:
    """The aiokafka producer inside Faust's producer; raises Faust's ``NotReady`` before it started."""
    return producer._ensure_producer()


def agent_actors(agent: Any) -> list[Any]:
    """The running actors of a Faust agent (one per partition or concurrency slot)."""
    return list(agent._actors)


def window_add(table: Any, key: Any, value: Any, timestamp: float) -> None:
    """Add ``value`` to ``key`` of a windowed table, in the window of ``timestamp`` (the event's own time).

    The public ``table[key] += value`` takes the window from the current record's timestamp; this
    is the same operation with the time given.
    """
    table._apply_window_op(operator.add, key, value, timestamp)


def partition_databases(store: Any) -> dict[int, Any]:
    """The RocksDB store's open databases, one per partition it holds; empty for another driver."""
    return dict(getattr(store, "_dbs", {}))


def partition_database(store: Any, partition: int) -> Any:
    """The RocksDB store's database for ``partition``, opened if it is not yet."""
    return store._db_for_partition(partition)


def drop_partition_database(store: Any, partition: int) -> None:
    """Forget the RocksDB store's database for ``partition``, as a rebalance that moves it away does (tests)."""
    store._dbs.pop(partition)


def topic_config(
    transport: type[Any], retention_ms: int | None, compacting: bool | None, deleting: bool | None
) -> dict[str, Any]:
    """The config Faust's ``transport`` class (its aiokafka one) gives a topic it creates (what start-up mirrors)."""
    return dict(transport._topic_config(None, retention_ms, compacting, deleting))


def app_tasks(app: Any) -> list[Any]:
    """The functions registered with ``@app.task`` (and ``app.timer``), in order."""
    return list(app._app_tasks)


def aiokafka_client(consumer: Any) -> Any:
    """The own client of an aiokafka consumer or admin client (for its metadata)."""
    return consumer._client
