"""The ingest controller on the loop: terms, generations, the ack tracker, restarts, stop; no server.

The checkpoint only moves over events Kafka acknowledged, in watch order.
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from streams.core.health import Health, Probes
from streams.ingest.checkpoint import Checkpoint
from streams.ingest.controller import AckTracker, IngestController, SendFailed
from streams.ingest.election import LeaseHealth, Started, Stopped
from streams.ingest.watch import WatchItem, WatchSettings
from tests.unit.kube_fakes import FakeClock, FakeElector, FakeKube, FakeThread, event


async def test_checkpoint_waits_for_the_oldest_unacknowledged_send() -> None:
    loop = asyncio.get_running_loop()
    tracker = AckTracker(FakeClock().now)
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
    tracker = AckTracker(FakeClock().now)
    done = loop.create_future()
    done.set_result(None)
    tracker.add("ns", "900", done, advances=False)
    assert tracker.acked("ns") is None
    tracker.add("ns", "950", None, advances=True)
    assert tracker.acked("ns") is not None and tracker.acked("ns")[0] == "950"  # type: ignore[index]


async def test_a_failed_send_stops_the_checkpoint() -> None:
    loop = asyncio.get_running_loop()
    tracker = AckTracker(FakeClock().now)
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


class Harness:
    """A controller whose threads are never run: the test posts as the elector and puts as the watchers."""

    def __init__(self) -> None:
        self.loop = asyncio.get_running_loop()
        self.clock = FakeClock()
        self.threads: list[FakeThread] = []
        self.sent: list[dict[str, Any]] = []
        self.futures: list[asyncio.Future[Any]] = []
        self.controller = IngestController(
            self.loop,
            FakeKube(),
            self.clock,
            scopes=[],
            watch=WatchSettings(),
            capacity=100,
            publish=self.publish,
            keep=lambda e: None,
            spawn=self.spawn,
        )
        self.elector = FakeElector()
        self.controller.elect(self.elector)
        self.task = self.loop.create_task(self.controller.run())

    def spawn(self, name: str, target: Callable[[], None]) -> FakeThread:
        thread = FakeThread(name)
        self.threads.append(thread)
        return thread

    async def publish(self, e: dict[str, Any]) -> asyncio.Future[Any]:
        self.sent.append(e)
        future: asyncio.Future[Any] = self.loop.create_future()
        self.futures.append(future)
        return future

    def watches(self) -> list[str]:
        return [t.name for t in self.threads if t.name.startswith("k8s-watch")]

    def put(self, generation: int, item: WatchItem) -> None:
        self.controller.handoff.put((generation, "*", item), threading.Event())

    async def settled(self, condition: Callable[[], bool]) -> None:
        """Let the loop run until ``condition`` holds (bounded: the loop has nothing else to wait for)."""
        for _ in range(1000):
            if condition():
                return
            await asyncio.sleep(0)
        raise AssertionError("condition not reached")

    async def close(self) -> None:
        self.task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await self.task


def added(uid: str, rv: str) -> WatchItem:
    return WatchItem("added", rv, event(uid, rv))


async def test_a_term_starts_watchers_from_the_leases_checkpoint_and_moves_it_on_acks() -> None:
    h = Harness()
    c = h.controller
    c.post(Started(1, _checkpoint("10")))
    await h.settled(lambda: bool(h.watches()))
    assert c.watchers[0].resource_version == "10"
    assert h.controller.health.readiness.report()[1]["ingest"]["detail"] == "leading"
    h.put(c.generation, added("a", "11"))
    h.put(c.generation, WatchItem("bookmark", "12"))
    await h.settled(lambda: len(h.sent) == 1 and c.tracker.pending("*") == 2)
    assert _rv_of(c.checkpoint_of(1)) == "10"
    h.futures[0].set_result(None)
    await h.settled(lambda: c.tracker.pending("*") == 0)
    assert _rv_of(c.checkpoint_of(1)) == "12"
    assert c.checkpoint_of(2) is None  # not this term
    await h.close()


async def test_items_of_a_stopped_term_are_dropped_never_published() -> None:
    h = Harness()
    c = h.controller
    c.handle(Started(1, Checkpoint()))
    old = c.generation
    watchers = list(c.watchers)
    for rv in ("1", "2", "3"):
        h.put(old, added(f"u{rv}", rv))
    c.handle(Stopped(1, "lease_taken"))  # before the loop got to the buffered items
    assert c.watchers == [] and watchers and all(w.stopped for w in watchers)
    await h.settled(lambda: len(c.handoff) == 0)
    await h.settled(lambda: c.dropped == 3)
    assert h.sent == []
    assert "watch[*]" not in h.controller.health.readiness.report()[1]
    # Late items of the old term keep being dropped, also after a new term started.
    c.handle(Started(2, Checkpoint()))
    h.put(old, added("late", "4"))
    h.put(c.generation, added("new", "5"))
    await h.settled(lambda: len(h.sent) == 1)
    assert h.sent[0]["metadata"]["uid"] == "new"
    assert c.dropped == 4
    await h.close()


async def test_a_failed_send_while_leading_rewatches_from_the_acknowledged_checkpoint() -> None:
    h = Harness()
    c = h.controller
    c.handle(Started(1, _checkpoint("10")))
    first = c.generation
    h.put(first, added("a", "11"))
    h.put(first, added("b", "12"))
    await h.settled(lambda: len(h.sent) == 2)
    h.futures[0].set_result(None)
    h.futures[1].set_exception(RuntimeError("MessageSizeTooLargeError"))
    await h.settled(lambda: c.generation != first)
    assert len(h.watches()) == 2
    assert c.watchers[0].resource_version == "11"  # resumes after the last acknowledged event
    await h.close()


async def test_a_failed_send_after_leadership_loss_restarts_nothing_and_publishes_nothing() -> None:
    h = Harness()
    c = h.controller
    c.handle(Started(1, Checkpoint()))
    h.put(c.generation, added("a", "1"))
    await h.settled(lambda: len(h.sent) == 1)
    c.handle(Stopped(1, "renew_deadline_exceeded"))
    h.futures[0].set_exception(RuntimeError("broker gone"))
    h.put(c.generation, added("b", "2"))  # even a current-generation item: not leading
    await h.settled(lambda: c.dropped == 1)
    assert len(h.watches()) == 1  # no restart
    assert len(h.sent) == 1 and c.watchers == []
    assert c.checkpoint_of(1) is None
    await h.close()


async def test_stop_waits_for_sends_in_flight_and_releases_with_the_last_acknowledged_checkpoint() -> None:
    h = Harness()
    c = h.controller
    c.handle(Started(1, _checkpoint("10")))
    h.put(c.generation, added("a", "11"))
    h.put(c.generation, added("b", "12"))
    await h.settled(lambda: len(h.sent) == 2)
    h.loop.call_soon(h.futures[0].set_result, None)  # acked while stopping; the second never is
    final = await c.stop(h.clock.monotonic() + 0.2)
    assert final is not None and final.get("*")[0] == "11"  # type: ignore[index]
    assert h.elector.stopped and h.elector.final == final
    assert all(not t.is_alive() for t in h.threads)
    # Messages after the stop change nothing.
    c.handle(Started(2, Checkpoint()))
    assert c.watchers == []
    await h.close()


async def test_stop_as_a_follower_releases_nothing() -> None:
    h = Harness()
    assert await h.controller.stop(h.clock.monotonic() + 1) is None
    assert h.elector.stopped and h.elector.final is None
    await h.close()


async def test_lease_health_reaches_readiness() -> None:
    h = Harness()
    h.controller.handle(LeaseHealth(False, "create refused: 403 Forbidden: nope"))
    ready, checks = h.controller.health.readiness.report()
    assert not ready and checks["lease"] == {
        **checks["lease"],
        "ok": False,
        "detail": "create refused: 403 Forbidden: nope",
    }
    h.controller.handle(LeaseHealth(True, "leading"))
    assert h.controller.health.readiness.report()[1]["lease"]["ok"]
    await h.close()


def _checkpoint(rv: str) -> Checkpoint:
    checkpoint = Checkpoint()
    checkpoint.set("*", rv, FakeClock().now())
    return checkpoint


def _rv_of(checkpoint: Checkpoint | None) -> str | None:
    resume = checkpoint.get("*") if checkpoint is not None else None
    return resume[0] if resume else None


async def test_a_send_refused_at_once_rewatches_instead_of_ending_the_loop() -> None:
    h = Harness()
    c = h.controller

    async def refuse(e: dict[str, Any]) -> asyncio.Future[Any]:
        raise RuntimeError("producer refused")

    c._publish = refuse
    c.handle(Started(1, _checkpoint("10")))
    first = c.generation
    h.put(first, added("a", "11"))
    await h.settled(lambda: c.generation != first)
    assert not h.task.done() and len(h.watches()) == 2
    await h.close()


class SpawnAndRun:
    """Runs each spawned target at once, in this thread (the election's end is what is tested)."""

    def __call__(self, name: str, target: Callable[[], None]) -> FakeThread:
        with contextlib.suppress(Exception):
            target()
        thread = FakeThread(name)
        thread.alive = False
        return thread


class DyingElector(FakeElector):
    def run(self) -> None:
        raise RuntimeError("lease client broke")


async def test_an_election_thread_that_dies_fails_liveness() -> None:
    controller = IngestController(
        asyncio.get_running_loop(),
        FakeKube(),
        FakeClock(),
        scopes=[],
        watch=WatchSettings(),
        capacity=10,
        publish=Harness.publish,  # type: ignore[arg-type]  # never called: no term starts
        keep=lambda e: None,
        spawn=SpawnAndRun(),
    )
    controller.elect(DyingElector())
    alive, checks = controller.health.liveness.report()
    assert not alive
    assert checks["election"]["ok"] is False
    assert "thread died: RuntimeError: lease client broke" in str(checks["election"]["detail"])


class ReadyAt:
    """Whether /readyz would answer 200, recorded at each point of a start-up."""

    def __init__(self, readiness: Health) -> None:
        self.readiness = readiness
        self.seen: list[tuple[str, bool]] = []

    def note(self, moment: str) -> None:
        self.seen.append((moment, self.readiness.report()[0]))


async def test_a_new_leader_is_not_ready_until_its_watch_streams() -> None:
    """The fault suite's lost versions (issue 17): /readyz said 200 before the first LIST was taken.

    The runner starts its writer once the worker is ready. The writer's first versions of an Event
    were superseded before the LIST read the scope, and a LIST shows only the newest version of
    each: those versions were never on the raw topic, with a newer one of the same Event there.
    Ready must mean collecting: the Lease checked, and as leader the WATCH open.
    """
    health = Probes()
    loop = asyncio.get_running_loop()
    ready = ReadyAt(health.readiness)
    listing, release = threading.Event(), threading.Event()
    kube = FakeKube()

    def slow_list() -> dict[str, Any]:
        listing.set()
        release.wait(10)
        return {"metadata": {"resourceVersion": "20"}, "items": [event("gen-0", "17")]}

    kube.lists = [slow_list]
    streaming, hang_up = threading.Event(), threading.Event()
    kube.watches = [[streaming.set, lambda: hang_up.wait(10)]]  # opens, then stays open until hung up
    threads: list[threading.Thread] = []

    def spawn(name: str, target: Callable[[], None]) -> threading.Thread | FakeThread:
        if not name.startswith("k8s-watch"):
            return FakeThread(name)  # the election: played by this test
        thread = threading.Thread(target=target, name=name, daemon=True)
        thread.start()
        threads.append(thread)
        return thread

    async def publish(e: dict[str, Any]) -> asyncio.Future[Any]:
        done: asyncio.Future[Any] = loop.create_future()
        done.set_result(None)
        return done

    controller = IngestController(
        loop,
        kube,
        FakeClock(),
        scopes=[],
        watch=WatchSettings(),
        capacity=10,
        publish=publish,
        keep=lambda e: None,
        spawn=spawn,
        health=health,
    )
    task = loop.create_task(controller.run())
    controller.elect(FakeElector())
    ready.note("before the first election round")
    controller.handle(Started(1, Checkpoint()))
    controller.handle(LeaseHealth(True, "leading"))
    await asyncio.to_thread(listing.wait, 10)
    ready.note("leading, the LIST in flight")
    release.set()
    await asyncio.to_thread(streaming.wait, 10)
    for _ in range(100):
        if health.readiness.report()[0]:
            break
        await asyncio.sleep(0.01)
    ready.note("the WATCH open")
    assert ready.seen == [
        ("before the first election round", False),
        ("leading, the LIST in flight", False),
        ("the WATCH open", True),
    ]
    assert health.readiness.report()[1]["watch[*]"]["detail"] == "streaming"
    hang_up.set()
    await controller.stop(FakeClock().monotonic() + 1)
    for thread in threads:
        thread.join(5)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
