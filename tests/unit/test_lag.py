"""Consumer lag: end offsets less committed offsets, per topic, over the partitions a worker owns."""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from typing import Any, NamedTuple

from hypothesis import given
from hypothesis import strategies as st

from streams.agents.lag import LagSampler
from streams.core import metrics
from streams.ops import lag


def test_lag_is_the_end_less_the_committed_offset_summed_per_topic() -> None:
    ends = {("raw", 0): 120, ("raw", 1): 50, ("clean", 0): 7}
    committed = {("raw", 0): 100, ("raw", 1): 50, ("clean", 0): 7}
    assert lag.records_behind(["raw", "clean"], ends, committed, {}) == {"raw": 20, "clean": 0}


def test_a_partition_with_nothing_committed_counts_from_the_log_start() -> None:
    ends = {("raw", 0): 120, ("raw", 1): 80}
    committed: dict[lag.Partition, int | None] = {("raw", 0): None}
    # Retention deleted the first 30 records of partition 1: they can never be read, so are no lag.
    starts = {("raw", 0): 0, ("raw", 1): 30}
    assert lag.uncommitted(ends, committed) == [("raw", 0), ("raw", 1)]
    assert lag.records_behind(["raw"], ends, committed, starts) == {"raw": 170}


def test_a_topic_with_no_owned_partition_is_zero_and_others_are_ignored() -> None:
    ends = {("raw", 0): 10, ("k8s-event-streams-dedup-changelog", 0): 999}
    assert lag.records_behind(["raw", "clean"], ends, {("raw", 0): 4}, {}) == {"raw": 6, "clean": 0}


def test_a_committed_offset_past_the_end_is_no_lag() -> None:
    # The topic was deleted and created again under the group's old offsets.
    assert lag.records_behind(["raw"], {("raw", 0): 5}, {("raw", 0): 500}, {}) == {"raw": 0}


offsets = st.integers(min_value=0, max_value=10**12)


@given(st.dictionaries(st.tuples(st.sampled_from(["raw", "clean"]), st.integers(0, 11)), st.tuples(offsets, offsets)))
def test_lag_is_never_negative_and_adds_up_over_partitions(parts: dict[lag.Partition, tuple[int, int]]) -> None:
    ends = {tp: end for tp, (end, _) in parts.items()}
    committed: dict[lag.Partition, int | None] = {tp: done for tp, (_, done) in parts.items()}
    behind = lag.records_behind(["raw", "clean"], ends, committed, {})
    assert all(value >= 0 for value in behind.values())
    for topic in ("raw", "clean"):
        assert behind[topic] == sum(max(0, e - d) for (t, _), (e, d) in parts.items() if t == topic)


class TP(NamedTuple):
    topic: str
    partition: int


class FakeConsumer:
    """What LagSampler reads of Faust's consumer: assignment, committed offsets, end and start offsets."""

    def __init__(self, ends: Mapping[TP, int], committed: Mapping[TP, int], starts: Mapping[TP, int]) -> None:
        self.ends, self.starts = dict(ends), dict(starts)
        self._committed_offset: dict[TP, int | None] = dict(committed)
        self.asked_starts: list[tuple[TP, ...]] = []

    def assignment(self) -> set[TP]:
        return set(self.ends)

    async def highwaters(self, *partitions: TP) -> dict[TP, int]:
        return {tp: self.ends[tp] for tp in partitions}

    async def earliest_offsets(self, *partitions: TP) -> dict[TP, int]:
        self.asked_starts.append(partitions)
        return {tp: self.starts[tp] for tp in partitions}


def gauge(topic: str, stage: str) -> float:
    value = metrics.REGISTRY.get_sample_value("k8sev_consumer_lag_records", {"topic": topic, "stage": stage})
    assert value is not None
    return value


def test_a_round_sets_the_gauges_of_each_stage_and_asks_log_starts_only_where_nothing_was_committed() -> None:
    consumer = FakeConsumer(
        ends={TP("u-raw", 0): 40, TP("u-raw", 1): 10, TP("u-clean", 0): 25, TP("u-changelog", 0): 9},
        committed={TP("u-raw", 0): 35, TP("u-clean", 0): 25},
        starts={TP("u-raw", 1): 4},
    )
    sampler = LagSampler(lambda: consumer, {"u-raw": "dedup", "u-clean": "sink"})
    asyncio.run(sampler.refresh())
    assert (gauge("u-raw", "dedup"), gauge("u-clean", "sink")) == (11, 0)
    assert consumer.asked_starts == [(TP("u-raw", 1),)]
    assert not sampler.failing


def test_a_failed_round_keeps_the_last_values() -> None:
    consumer = FakeConsumer(ends={TP("f-raw", 0): 9}, committed={TP("f-raw", 0): 2}, starts={})
    sampler = LagSampler(lambda: consumer, {"f-raw": "dedup"})
    asyncio.run(sampler.refresh())
    assert gauge("f-raw", "dedup") == 7

    async def broken(*partitions: Any) -> dict[TP, int]:
        raise ConnectionError("broker gone")

    consumer.highwaters = broken  # type: ignore[method-assign]
    asyncio.run(sampler.refresh())
    assert sampler.failing and gauge("f-raw", "dedup") == 7
