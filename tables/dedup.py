"""Dedup's memory: per uid, the last delivered resourceVersion and its occurrence count.

With the RocksDB store (`K8SEV_STORE=rocksdb://`) it is a plain table whose entries live at least three dedup
horizons: RocksDB drops older ones when it compacts (its TTL), and the changelog topic deletes
records older than that too, so the state stays bounded on disk and in Kafka, and nothing per uid
stays in the worker's memory. (A windowed table would keep every key of every open window in a
Python set for its own expiry: about 0.8 KiB per uid, measured in bench.memory.)

With ``memory://`` the whole state is in memory anyway: it stays the tumbling-windowed table whose
window is the horizon (a lookup reads the current window and the one before), so it is bounded by
the windows Faust drops.
"""

from __future__ import annotations

from typing import Any

import faust

from streams.dedup import Seen
from streams.settings import Settings

#: How many horizons a RocksDB entry outlives its last write (the windowed table's upper bound).
KEEP_HORIZONS = 3

#: Small memtables and block cache per partition store: Faust's defaults (3 x 64 MiB memtables and
#: a 2 GiB block cache per partition) would keep a million uids of a few partitions all in memory
#: (bench.memory: RSS grew 62-80 MiB per 100,000 uids until the memtables would fill). Every
#: partition of every table has its own store, so these caps multiply by tables x partitions.
ROCKSDB_OPTIONS: dict[str, Any] = {
    "write_buffer_size": 2 << 20,
    "max_write_buffer_number": 2,
    "block_cache_size": 4 << 20,
}


def is_rocksdb(settings: Settings) -> bool:
    return settings.stages.store.startswith("rocksdb")


class DedupMemory:
    """What dedup delivered per uid; read and written only from the dedup agent's stream."""

    def __init__(self, app: faust.App, settings: Settings) -> None:
        self._horizon = settings.stages.dedup_horizon
        self._windowed = not is_rocksdb(settings)
        help_text = "uid -> [resourceVersion, count] of the last version delivered to the clean topic"
        if self._windowed:
            self.table = app.Table(
                "dedup-seen", default=lambda: None, partitions=settings.kafka.topic_partitions, help=help_text
            ).tumbling(self._horizon, expires=self._horizon)
            return
        keep = KEEP_HORIZONS * self._horizon
        # Its own name: the windowed table's changelog holds (uid, window) keys.
        self.table = app.Table(
            "dedup-last",
            default=lambda: None,
            partitions=settings.kafka.topic_partitions,
            help=help_text,
            options={**ROCKSDB_OPTIONS, "ttl": int(keep)},
            extra_topic_configs={"cleanup.policy": "compact,delete", "retention.ms": str(int(keep * 1000))},
        )

    def recall(self, uid: str) -> Seen | None:
        """What was last delivered for ``uid`` within the horizon (current window first)."""
        value: Any
        if self._windowed:
            window = self.table[uid]
            value = window.current()
            if value is None:
                value = window.delta(self._horizon)
        else:
            value = self.table.get(uid)
        if not value:
            return None
        return Seen(resource_version=str(value[0]), count=int(value[1]))

    def remember(self, uid: str, delivered: Seen) -> None:
        self.table[uid] = [delivered.resource_version, delivered.count]


def declare(app: faust.App, settings: Settings) -> DedupMemory:
    return DedupMemory(app, settings)
