"""Dedup's RocksDB memory: entries carry their write time, and the sweep deletes only expired ones."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from streams.config.settings import Settings
from streams.core import faust_compat
from streams.pipeline import App
from streams.tables import dedup as dedup_tables
from streams.tables.dedup import KEEP_HORIZONS, DedupMemory, written_at

HORIZON = 3600.0
NOW = 1_800_000_000.0


def memory(tmp_path: Path) -> DedupMemory:
    settings = Settings.from_env(
        {
            "K8SEV_APP_ID": "unit-dedup-memory",
            "K8SEV_DATA_DIR": str(tmp_path),
            "K8SEV_STORE": "rocksdb://",
            "K8SEV_DEDUP_HORIZON": "1h",
        }
    )
    app = App(
        settings.app_id,
        store="rocksdb://",
        datadir=str(tmp_path),
        autodiscover=False,
        loop=asyncio.get_running_loop(),
    )
    return DedupMemory(app, settings, clock=lambda: NOW)


def store(mem: DedupMemory, partition: int) -> Any:
    # Opens the partition's database the way Faust does once the partition is assigned.
    return faust_compat.partition_database(mem.table.data, partition)


def put(db: Any, uid: str, value: list[Any]) -> None:
    db.put(json.dumps(uid).encode(), json.dumps(value).encode())


def keys(db: Any) -> set[str]:
    return {json.loads(k) for k, _ in db.items() if not k.startswith(b"__faust")}


async def test_the_sweep_deletes_only_entries_older_than_keep(tmp_path: Path) -> None:
    mem = memory(tmp_path)
    keep = KEEP_HORIZONS * HORIZON
    first, second = store(mem, 0), store(mem, 3)
    put(first, "old", ["10", 1, int(NOW - keep - 1)])
    put(first, "fresh", ["11", 1, int(NOW - keep + 60)])
    put(first, "from-an-older-release", ["12", 2])
    put(second, "old-too", ["13", 1, int(NOW - 10 * keep)])
    put(second, "now", ["14", 1, int(NOW)])
    first.put(b"__faust\0offset__", b"41")

    deleted = await mem.sweep()

    assert deleted == 2
    assert keys(first) == {"fresh", "from-an-older-release"}
    assert keys(second) == {"now"}
    assert first.get(b"__faust\0offset__") == b"41"


async def test_the_sweep_stops_on_a_partition_revoked_meanwhile(tmp_path: Path, monkeypatch: Any) -> None:
    monkeypatch.setattr(dedup_tables, "SWEEP_CHUNK", 2)
    mem = memory(tmp_path)
    db = store(mem, 0)
    for n in range(5):
        put(db, f"old-{n}", [str(n), 1, int(NOW - 10 * KEEP_HORIZONS * HORIZON)])
    # Runs at the sweep's first yield, as a rebalance would.
    asyncio.get_running_loop().call_soon(faust_compat.drop_partition_database, mem.table.data, 0)

    deleted = await mem.sweep()

    assert deleted == 1
    assert len(keys(db)) == 4


async def test_the_sweep_is_registered_only_for_rocksdb(tmp_path: Path) -> None:
    loop = asyncio.get_running_loop()
    for store_url, expected in (("rocksdb://", 1), ("memory://", 0)):
        settings = Settings.from_env(
            {"K8SEV_APP_ID": "unit-sweep", "K8SEV_DATA_DIR": str(tmp_path), "K8SEV_STORE": store_url}
        )
        app = App(settings.app_id, store=store_url, datadir=str(tmp_path), autodiscover=False, loop=loop)
        dedup_tables.declare(app, settings)
        sweeps = [task for task in faust_compat.app_tasks(app) if task.__name__ == "sweep"]
        assert len(sweeps) == expected, store_url


@given(st.binary(max_size=64))
def test_written_at_never_raises_on_stored_bytes(raw: bytes) -> None:
    assert isinstance(written_at(raw), float)


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (["1", 1, 5], 5.0),
        (["1", 1, 5.5], 5.5),
        (["1", 1], float("inf")),
        (["1", 1, "x"], float("inf")),
        ({}, float("inf")),
    ],
)
def test_written_at_reads_the_third_element(value: Any, expected: float) -> None:
    assert written_at(json.dumps(value).encode()) == expected
