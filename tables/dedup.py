"""Dedup's memory: per uid, the last delivered resourceVersion and its occurrence count.

With the RocksDB store (`K8SEV_STORE=rocksdb://`) it is a plain table whose entries carry the time
they were written: a sweep on a timer deletes, from this worker's own stores, entries older than
three dedup horizons, and the changelog topic deletes records older than that too, so the state
stays bounded on disk and in Kafka, and nothing per uid stays in the worker's memory. (A windowed
table would keep every key of every open window in a Python set for its own expiry: about 0.8 KiB
per uid, measured in bench.memory.) RocksDB's own TTL is not used: a store reopened with it after
a restart got the TTL filter twice, and its next compaction deleted every entry (bench.memory's
replay after kill -9 found 5 of 6 partitions empty).

With ``memory://`` the whole state is in memory anyway: it stays the tumbling-windowed table whose
window is the horizon (a lookup reads the current window and the one before), so it is bounded by
the windows Faust drops.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections.abc import Callable
from typing import Any

import faust

from streams.config.settings import Settings
from streams.core import faust_compat, logs
from streams.dedup.decide import Seen

log = logging.getLogger(__name__)

#: How many horizons a RocksDB entry outlives its last write (the windowed table's upper bound).
KEEP_HORIZONS = 3

#: Entries the sweep reads between two yields to the event loop.
SWEEP_CHUNK = 2000

#: Faust's own key in every RocksDB store (the last changelog offset applied): never swept.
_OFFSET_KEY = b"__faust\0offset__"

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

    def __init__(self, app: faust.App, settings: Settings, clock: Callable[[], float] = time.time) -> None:
        self.horizon = settings.stages.dedup_horizon
        self._windowed = not is_rocksdb(settings)
        self._clock = clock
        self.keep = KEEP_HORIZONS * self.horizon
        help_text = "uid -> [resourceVersion, count, written] of the last version delivered to the clean topic"
        if self._windowed:
            self.table = app.Table(
                "dedup-seen", default=lambda: None, partitions=settings.kafka.topic_partitions, help=help_text
            ).tumbling(self.horizon, expires=self.horizon)
            return
        # Its own name: the windowed table's changelog holds (uid, window) keys.
        self.table = app.Table(
            "dedup-last",
            default=lambda: None,
            partitions=settings.kafka.topic_partitions,
            help=help_text,
            options=ROCKSDB_OPTIONS,
            extra_topic_configs={"cleanup.policy": "compact,delete", "retention.ms": str(int(self.keep * 1000))},
        )

    @property
    def sweeps(self) -> bool:
        """Whether expired entries must be deleted by :meth:`sweep` (the windowed table expires its own)."""
        return not self._windowed

    def recall(self, uid: str) -> Seen | None:
        """What was last delivered for ``uid`` within the horizon (current window first)."""
        value: Any
        if self._windowed:
            window = self.table[uid]
            value = window.current()
            if value is None:
                value = window.delta(self.horizon)
        else:
            value = self.table.get(uid)
        if not value:
            return None
        return Seen(resource_version=str(value[0]), count=int(value[1]))

    def remember(self, uid: str, delivered: Seen) -> None:
        if self._windowed:
            self.table[uid] = [delivered.resource_version, delivered.count]
        else:
            self.table[uid] = [delivered.resource_version, delivered.count, int(self._clock())]

    async def sweep(self) -> int:
        """Delete, from this worker's RocksDB stores, the entries written more than ``keep`` ago;
        returns how many. Local deletes only: the changelog's own retention drops the same records."""
        cutoff = self._clock() - self.keep
        deleted = 0
        for partition in sorted(self._databases()):
            try:
                swept = await self._sweep_partition(partition, cutoff)
            except Exception as exc:  # noqa: BLE001 - a store closed by a rebalance meanwhile; next period
                logs.warning(log, "dedup_sweep_failed", partition=partition, error=f"{type(exc).__name__}: {exc}"[:300])
                continue
            deleted += swept
            if swept:
                logs.info(log, "dedup_swept", partition=partition, deleted=swept)
        return deleted

    def _databases(self) -> dict[int, Any]:
        # Faust's RocksDB store keeps one database per partition it holds, with no public way to
        # reach them; a store without them (another driver) has nothing to sweep.
        return faust_compat.partition_databases(self.table.data)

    async def _sweep_partition(self, partition: int, cutoff: float) -> int:
        db: Any = self._databases().get(partition)
        if db is None:
            return 0
        deleted = 0
        # RocksDB iterates a snapshot, so deleting behind the iterator is safe.
        for read, (key, raw) in enumerate(db.items(), start=1):
            if read % SWEEP_CHUNK == 0:
                await asyncio.sleep(0)  # a million entries must not stall the stream
                if self._databases().get(partition) is not db:
                    break  # revoked by a rebalance meanwhile: no longer ours to sweep
            if key != _OFFSET_KEY and written_at(raw) < cutoff:
                db.delete(key)
                deleted += 1
        return deleted


def written_at(raw: bytes) -> float:
    """When a stored entry was written; entries of older releases, without the time, count as new."""
    try:
        value = json.loads(raw)
    except ValueError:
        return float("inf")
    if isinstance(value, list) and len(value) >= 3 and isinstance(value[2], int | float):
        return float(value[2])
    return float("inf")


def declare(app: faust.App, settings: Settings) -> DedupMemory:
    memory = DedupMemory(app, settings)
    if memory.sweeps:
        # Every worker sweeps the stores it holds; an entry lives between keep and keep + horizon.
        app.timer(interval=memory.horizon, name="dedup-sweep")(memory.sweep)
    return memory
