"""How much changelog a restarted worker must read: each RocksDB store's persisted offset against
its changelog's end offset (what Faust's recovery reads is the difference)."""

from __future__ import annotations

import asyncio
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from devstack import offsets

#: Faust keeps the last changelog offset written into the store under this key (faust/stores/rocksdb.py).
OFFSET_KEY = b"__faust\0offset__"
_STORE_DIR = re.compile(r"^(?P<table>.+)-(?P<partition>\d+)\.db$")


@dataclass(frozen=True)
class Gap:
    table: str
    partitions: int
    #: Partitions whose store has no persisted offset: recovery reads their changelog from the start.
    without_offset: int
    #: Changelog records between the persisted offsets and the end offsets, summed over partitions.
    behind: int
    end: int


def persisted_offsets(data_dir: Path) -> dict[str, dict[int, int | None]]:
    """table -> partition -> persisted offset, read from every store under ``data_dir`` (the worker
    must be gone: RocksDB locks a store for the process that opened it)."""
    from rocksdict import AccessType, Options, Rdict

    found: dict[str, dict[int, int | None]] = {}
    for path in sorted(data_dir.rglob("*.db")):
        match = _STORE_DIR.match(path.name)
        if match is None or not path.is_dir():
            continue
        db = Rdict(str(path), options=Options(raw_mode=True), access_type=AccessType.read_only())
        try:
            raw = db.get(OFFSET_KEY)
        finally:
            db.close()
        found.setdefault(match["table"], {})[int(match["partition"])] = _offset(raw)
    return found


def _offset(raw: bytes | None) -> int | None:
    if raw is None:
        return None
    if not raw.isdigit():
        # A store opened with a TTL (dedup's, before 91ddfaf: a BENCH_WORKER_TREE checkout may be older)
        # appends its 4-byte write time to every value; its high byte (a Unix time after 2024) is never
        # an ASCII digit.
        raw = raw[:-4]
    return int(raw)


async def _end_offsets(bootstrap: str, topics: list[str]) -> dict[tuple[str, int], int]:
    from aiokafka import AIOKafkaConsumer

    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False)
    await consumer.start()
    try:
        partitions: list[Any] = []
        for topic in topics:
            partitions.extend(await offsets.partitions(consumer, topic))
        ends = await consumer.end_offsets(partitions)
        return {(tp.topic, tp.partition): int(offset) for tp, offset in ends.items()}
    finally:
        await consumer.stop()


def gaps(data_dir: Path, bootstrap: str, app_id: str) -> list[Gap]:
    """Per table store: what recovery would read after a restart from ``data_dir``."""
    stored = persisted_offsets(data_dir)
    topic_of = {table: f"{app_id}-{table}-changelog" for table in stored}
    ends = asyncio.run(_end_offsets(bootstrap, list(topic_of.values())))
    result: list[Gap] = []
    for table, by_partition in sorted(stored.items()):
        behind = without = end_total = 0
        for partition, offset in by_partition.items():
            end = ends.get((topic_of[table], partition), 0)
            end_total += end
            if offset is None:
                without += 1
                behind += end
            else:
                # The persisted offset is the last record applied; the next to read is one past it.
                behind += max(0, end - (offset + 1))
        result.append(Gap(table, len(by_partition), without, behind, end_total))
    return result
