"""Counting: per-batch sums keep every occurrence, in the window of the event's own time."""

from __future__ import annotations

import asyncio
import json
from collections import Counter
from datetime import datetime
from typing import Any, cast

import pytest
from hypothesis import given
from hypothesis import strategies as st

from streams.agents import counts as count_stage
from streams.agents import dedup as dedup_stage
from streams.config.settings import Settings
from streams.core import topics
from streams.core.records import CleanEvent
from streams.counts.windows import Occurrence, aggregate, split_partition_key, window_start
from streams.pipeline import App
from streams.tables.counts import CountTables, declare
from streams.tables.dedup import DedupMemory

names = st.sampled_from(["ns-a", "ns-b", "kube-system"])
occurrences = st.builds(
    Occurrence,
    time=st.floats(min_value=1.7e9, max_value=1.8e9, allow_nan=False),
    namespace=names,
    type=st.sampled_from(["Normal", "Warning"]),
    reason=st.sampled_from(["BackOff", "Pulled", "a/reason/with/slashes"]),
    kind=st.sampled_from(["Pod", "Node"]),
    occurrences=st.integers(min_value=0, max_value=1000),
)


@given(st.lists(occurrences, max_size=200))
def test_batch_sums_keep_every_occurrence_in_its_own_window(items: list[Occurrence]) -> None:
    sums = aggregate(items)
    expected: Counter[tuple[str, str, str, float]] = Counter()
    for item in items:
        for label in ("1m", "1h"):
            start = window_start(label, item.time)
            expected["reason", label, f"{item.namespace}/{item.type}/{item.reason}", start] += item.occurrences
            expected["kind", label, f"{item.kind}/{item.reason}", start] += item.occurrences
    assert sums == {k: v for k, v in expected.items() if v}
    assert all(
        start <= item.time < start + 60
        for item in items
        for (_, label, _, start) in [("", "1m", "", window_start("1m", item.time))]
    )


def clean(uid: str, when: float, occurrences: int, reason: str = "BackOff") -> CleanEvent:
    return CleanEvent(
        uid=uid,
        resource_version="1",
        occurrences=occurrences,
        time=when,
        namespace="ns-a",
        type="Warning",
        reason=reason,
        kind="Pod",
        event={},
    )


def raw(uid: str, stamp: str, count: int) -> bytes:
    body = {
        "metadata": {"uid": uid, "resourceVersion": "1", "namespace": "ns-a", "name": uid},
        "involvedObject": {"kind": "Pod", "name": "p"},
        "reason": "BackOff",
        "type": "Warning",
        "count": count,
        "lastTimestamp": stamp,
    }
    return json.dumps(body).encode()


async def test_dedup_counts_what_it_delivered_under_the_partition_it_came_from(
    tmp_path: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    settings = Settings.from_env({"K8SEV_APP_ID": "unit-counts", "K8SEV_DEDUP_WITHIN": "10ms"})
    app = App(
        settings.app_id, store="memory://", datadir=str(tmp_path), autodiscover=False, loop=asyncio.get_running_loop()
    )
    declared = topics.declare(app, settings)
    tables = declare(app, settings)
    agent = dedup_stage.install(app, settings, declared, DedupMemory(app, settings), count_stage.Counter(tables))

    async def acknowledged(**_: Any) -> asyncio.Future[None]:
        done: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        done.set_result(None)
        return done

    monkeypatch.setattr(declared.clean, "send", acknowledged)
    minute = 1_764_000_000.0  # a whole minute and a whole hour
    stamps = ["2025-11-24T16:00:01Z", "2025-11-24T16:00:59Z", "2025-11-24T16:01:01Z"]
    assert datetime.fromisoformat(stamps[0]).timestamp() == minute + 1
    async with agent.test_context() as tested:
        for i, (stamp, count) in enumerate(zip(stamps, [2, 3, 4], strict=True)):
            await tested.put(raw(f"u{i}", stamp, count), key=f"u{i}".encode(), partition=2)
            # A repeat adds nothing: dedup drops it before it is counted.
            await tested.put(raw(f"u{i}", stamp, count), key=f"u{i}".encode(), partition=2)
    minutes = {
        (split_partition_key(name), window[0]): value
        for (name, window), value in tables.by_reason["1m"].table.data.items()
    }
    assert minutes == {
        ((2, "ns-a/Warning/BackOff"), minute): 5,
        ((2, "ns-a/Warning/BackOff"), minute + 60): 4,
    }
    hours = {split_partition_key(name): value for (name, _), value in tables.by_kind["1h"].table.data.items()}
    assert hours == {(2, "Pod/BackOff"): 9}


@pytest.mark.parametrize("bad", [Occurrence(1.7e9, "n", "Normal", "r", "Pod", 0)])
def test_nothing_counted_for_versions_that_add_no_occurrence(bad: Occurrence) -> None:
    assert aggregate([bad]) == {}


def test_a_batch_of_several_partitions_is_written_once_under_its_last_partition() -> None:
    written: list[tuple[int, dict[Any, int]]] = []

    class Tables:
        def add(self, partition: int, sums: dict[Any, int]) -> None:
            written.append((partition, sums))

    class Message:
        def __init__(self, partition: int) -> None:
            self.partition = partition

    class Event:
        def __init__(self, partition: int, value: CleanEvent) -> None:
            self.message, self.value = Message(partition), value

    minute = 1_764_000_000.0
    batch: list[Any] = [Event(p, clean(f"u{p}", minute + 1, 2)) for p in (0, 3, 1)]
    count_stage.Counter(cast(CountTables, Tables())).add([e.value for e in batch], batch[-1])
    assert len(written) == 1
    partition, sums = written[0]
    assert partition == 1
    assert sums[("reason", "1m", "ns-a/Warning/BackOff", minute)] == 6
    assert sum(v for (family, label, _, _), v in sums.items() if family == "kind" and label == "1h") == 6
