"""The checkpoint only moves over events Kafka acknowledged, in watch order."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime

import pytest
from hypothesis import given
from hypothesis import strategies as st

from streams.ingest import AckTracker, SendFailed
from streams.leader import Checkpoint


async def test_checkpoint_waits_for_the_oldest_unacknowledged_send() -> None:
    loop = asyncio.get_running_loop()
    tracker = AckTracker()
    first, second = loop.create_future(), loop.create_future()
    tracker.add("*", "10", first, advances=True)
    tracker.add("*", "11", second, advances=True)
    tracker.add("*", "12", None, advances=True)  # a bookmark
    second.set_result(None)
    tracker.settle("*")
    assert tracker.acked("*") is None
    first.set_result(None)
    tracker.settle("*")
    acked = tracker.acked("*")
    assert acked is not None and acked[0] == "12"


async def test_listed_items_do_not_move_the_checkpoint_until_the_list_ends() -> None:
    loop = asyncio.get_running_loop()
    tracker = AckTracker()
    done = loop.create_future()
    done.set_result(None)
    tracker.add("ns", "900", done, advances=False)
    assert tracker.acked("ns") is None
    tracker.add("ns", "950", None, advances=True)
    assert tracker.acked("ns") is not None and tracker.acked("ns")[0] == "950"  # type: ignore[index]


async def test_a_failed_send_stops_the_checkpoint() -> None:
    loop = asyncio.get_running_loop()
    tracker = AckTracker()
    failed = loop.create_future()
    failed.set_exception(RuntimeError("broker gone"))
    with pytest.raises(SendFailed):
        tracker.add("*", "5", failed, advances=True)
    assert tracker.acked("*") is None


@given(st.dictionaries(st.text(min_size=1), st.from_regex(r"\A[0-9]{1,12}\Z")))
def test_checkpoint_annotation_round_trips(scopes: dict[str, str]) -> None:
    when = datetime(2026, 11, 26, 12, 0, tzinfo=UTC)
    checkpoint = Checkpoint()
    for scope, rv in scopes.items():
        checkpoint.set(scope, rv, when)
    decoded = Checkpoint.decode(checkpoint.encode())
    assert {s: decoded.get(s) for s in scopes} == {s: (rv, when) for s, rv in scopes.items()}


@pytest.mark.parametrize("text", [None, "", "not json", "[1]", '{"*": "x"}'])
def test_unreadable_checkpoints_mean_start_with_a_list(text: str | None) -> None:
    assert Checkpoint.decode(text).get("*") is None
