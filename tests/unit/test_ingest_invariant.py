"""The ingest invariant under random interleavings (hypothesis state machine), no server.

The invariant (docs/design.md, "The checkpoint"): the checkpoint, in the tracker, in the Lease, and
every resourceVersion a new watch resumes from, never passes a version of the watched scope that
Kafka has not acknowledged. The only exceptions are versions the API server itself can no longer
show (superseded before a LIST) and versions a filter dropped on purpose.

The machine plays the API server (a history of writes), the watcher threads (they hand items to the
controller's buffer exactly as :class:`streams.ingest.watch.Watcher` would, from the resourceVersion each
watcher was created with), the elector (terms start and end, renewals copy the checkpoint into a
Lease) and Kafka (each send is acknowledged, fails, or stays in flight). The real
:class:`streams.ingest.controller.IngestController` and its ``AckTracker`` run on a real loop.
"""

from __future__ import annotations

import asyncio
import contextlib
import random
import threading
from collections.abc import Callable
from typing import Any

from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, precondition, rule

from streams.ingest.checkpoint import Checkpoint
from streams.ingest.controller import IngestController
from streams.ingest.election import Started, Stopped
from streams.ingest.watch import Watcher, WatchItem, WatchSettings
from tests.unit.kube_fakes import FakeClock, FakeElector, FakeKube, FakeThread, event

SCOPE = "*"
UIDS = ("a", "b", "c", "filtered")


class _ModelWatch:
    """What one watcher thread has handed on so far: the resourceVersion it got to, or a LIST to do."""

    def __init__(self, watcher: Watcher) -> None:
        self.watcher = watcher
        self.generation = watcher.generation
        self.cursor: int | None = int(watcher.resource_version) if watcher.resource_version else None


class IngestInvariant(RuleBasedStateMachine):
    def __init__(self) -> None:
        super().__init__()
        self.loop = asyncio.new_event_loop()
        self.clock = FakeClock()
        self.rv = 100
        # The API server's history of this scope: (resourceVersion, uid); uid None is a write elsewhere.
        self.history: list[tuple[int, str | None]] = []
        self.acked: set[int] = set()
        self.excused: set[int] = set()
        self.in_flight: list[tuple[int, asyncio.Future[Any]]] = []
        self.refuse_next = False
        self.lease = Checkpoint()
        self.term = 0
        self.leading = False
        self.watches: list[_ModelWatch] = []
        self.controller: IngestController
        self.task: asyncio.Task[None]
        self._start_process()

    # --- plumbing ----------------------------------------------------------------------------

    def _start_process(self) -> None:
        self.controller = IngestController(
            self.loop,
            FakeKube(),
            self.clock,
            scopes=[],
            watch=WatchSettings(),
            capacity=10_000,
            publish=self._publish,
            keep=lambda e: "reason" if e["metadata"]["uid"] == "filtered" else None,
            spawn=self._spawn,
        )
        self.elector = FakeElector()
        self.controller.elect(self.elector)
        self.task = self.loop.create_task(self.controller.run())
        self.leading = False
        self.watches = []
        self._run()

    def _spawn(self, name: str, target: Callable[[], None]) -> FakeThread:
        owner = getattr(target, "__self__", None)
        if isinstance(owner, Watcher):
            self._check_resume(owner)
            self.watches.append(_ModelWatch(owner))
        return FakeThread(name)

    async def _publish(self, e: dict[str, Any]) -> asyncio.Future[Any]:
        if self.refuse_next:
            self.refuse_next = False
            raise RuntimeError("producer refused")
        future: asyncio.Future[Any] = self.loop.create_future()
        self.in_flight.append((int(e["metadata"]["resourceVersion"]), future))
        return future

    def _run(self) -> None:
        """Let the loop do everything it can now (bounded: nothing in it waits on time)."""

        async def settle() -> None:
            for _ in range(50):
                await asyncio.sleep(0)

        self.loop.run_until_complete(settle())

    def _current(self) -> _ModelWatch | None:
        live = [w for w in self.watches if w.generation == self.controller.generation and not w.watcher.stopped]
        return live[-1] if live else None

    def _put(self, generation: int, item: WatchItem) -> None:
        self.controller.handoff.put((generation, SCOPE, item), threading.Event())

    def _events(self) -> list[tuple[int, str]]:
        return [(rv, uid) for rv, uid in self.history if uid is not None]

    def _safe_up_to(self, resource_version: str | None) -> None:
        """Every version of the scope at or before ``resource_version`` was acknowledged or is excused."""
        if not resource_version:
            return
        limit = int(resource_version)
        unsafe = [rv for rv, _ in self._events() if rv <= limit and rv not in self.acked and rv not in self.excused]
        assert not unsafe, f"resourceVersion {limit} passes versions Kafka never acknowledged: {unsafe}"

    def _check_resume(self, watcher: Watcher) -> None:
        self._safe_up_to(watcher.resource_version)

    # --- the API server ----------------------------------------------------------------------

    @rule(uid=st.sampled_from(UIDS))
    def write(self, uid: str) -> None:
        self.rv += 1
        self.history.append((self.rv, uid))
        if uid == "filtered":
            self.excused.add(self.rv)

    @rule()
    def write_elsewhere(self) -> None:
        self.rv += 1
        self.history.append((self.rv, None))

    # --- the watcher thread of the current generation -----------------------------------------

    @precondition(lambda self: self._current() is not None)
    @rule(count=st.integers(min_value=1, max_value=4))
    def deliver(self, count: int) -> None:
        watch = self._current()
        assert watch is not None
        if watch.cursor is None:
            self._list(watch)
            return
        pending = [(rv, uid) for rv, uid in self._events() if rv > watch.cursor][:count]
        for rv, uid in pending:
            self._put(watch.generation, WatchItem("modified", str(rv), event(uid, str(rv))))
            watch.cursor = rv
        self._run()

    @precondition(lambda self: self._current() is not None)
    @rule()
    def bookmark(self) -> None:
        """The server's bookmark: everything of the scope up to it was sent (writes elsewhere included)."""
        watch = self._current()
        assert watch is not None
        if watch.cursor is None:
            return
        undelivered = [rv for rv, _ in self._events() if rv > watch.cursor]
        at = (undelivered[0] - 1) if undelivered else self.rv
        if at > watch.cursor:
            watch.cursor = at
            self._put(watch.generation, WatchItem("bookmark", str(at)))
            self._run()

    @precondition(lambda self: self._current() is not None)
    @rule(data=st.data())
    def gone(self, data: st.DataObject) -> None:
        """410: the watcher lists again (what it had not delivered yet and was superseded is gone)."""
        watch = self._current()
        assert watch is not None
        self._list(watch, data.draw(st.randoms(use_true_random=False)))

    def _list(self, watch: _ModelWatch, order: random.Random | None = None) -> None:
        newest: dict[str, int] = {}
        for rv, uid in self._events():
            newest[uid] = rv
        latest = set(newest.values())
        delivered_up_to = watch.cursor or 0
        for rv, _ in self._events():
            if rv not in latest and rv > delivered_up_to:
                self.excused.add(rv)  # superseded before the LIST: the API server cannot show it
        listed = sorted(newest.items())
        if order is not None:
            order.shuffle(listed)  # a LIST comes in no useful order
        for uid, rv in listed:
            self._put(watch.generation, WatchItem("listed", str(rv), event(uid, str(rv))))
        self._put(watch.generation, WatchItem("synced", str(self.rv)))
        watch.cursor = self.rv
        self._run()

    @precondition(lambda self: bool(self.history))
    @rule(data=st.data())
    def late_item_of_an_old_generation(self, data: st.DataObject) -> None:
        old = [w.generation for w in self.watches if w.generation != self.controller.generation]
        if not old:
            return
        rv, uid = data.draw(st.sampled_from(self.history))
        # An old generation's items, even a bookmark far ahead, must never move anything.
        item = WatchItem("bookmark", str(self.rv + 1000))
        if uid is not None:
            item = WatchItem("added", str(rv), event(uid, str(rv)))
        self._put(data.draw(st.sampled_from(old)), item)
        self._run()

    # --- Kafka -------------------------------------------------------------------------------

    @precondition(lambda self: bool(self.in_flight))
    @rule(data=st.data(), ok=st.booleans())
    def kafka_answers(self, data: st.DataObject, ok: bool) -> None:
        index = data.draw(st.integers(min_value=0, max_value=len(self.in_flight) - 1))
        rv, future = self.in_flight.pop(index)
        if ok:
            self.acked.add(rv)
            future.set_result(None)
        else:
            future.set_exception(RuntimeError("KafkaTimeoutError"))
        self._run()
        if not ok:
            future.exception()  # seen here; a stale generation's failure is rightly ignored

    @rule()
    def kafka_refuses_the_next_send(self) -> None:
        self.refuse_next = True

    # --- the elector -------------------------------------------------------------------------

    @precondition(lambda self: not self.leading)
    @rule()
    def term_starts(self) -> None:
        self.term += 1
        self.leading = True
        self.controller.handle(Started(self.term, Checkpoint.decode(self.lease.encode())))
        self._run()

    @precondition(lambda self: self.leading)
    @rule()
    def term_ends(self) -> None:
        self.leading = False
        self.controller.handle(Stopped(self.term, "renew_deadline_exceeded"))
        self._run()

    @precondition(lambda self: self.leading)
    @rule()
    def renew(self) -> None:
        mine = self.controller.checkpoint_of(self.term)
        if mine is not None:
            self.lease.scopes.update(mine.scopes)

    @rule(graceful=st.booleans())
    def process_restarts(self, graceful: bool) -> None:
        if graceful:
            final = self.loop.run_until_complete(self.controller.stop(self.clock.monotonic() + 0.01))
            if final is not None:
                self.lease.scopes.update(final.scopes)
        self.task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            self.loop.run_until_complete(self.task)
        # Sends the old process left in flight may still be acknowledged by Kafka, or not.
        self._start_process()

    # --- the invariant -----------------------------------------------------------------------

    @invariant()
    def checkpoints_never_pass_an_unacknowledged_version(self) -> None:
        tracked = self.controller.tracker.acked(SCOPE)
        self._safe_up_to(tracked[0] if tracked else None)
        stored = self.lease.get(SCOPE)
        self._safe_up_to(stored[0] if stored else None)

    def teardown(self) -> None:
        self.task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            self.loop.run_until_complete(self.task)
        self.loop.close()


IngestInvariant.TestCase.settings = settings(
    max_examples=120, stateful_step_count=50, deadline=None, suppress_health_check=[HealthCheck.too_slow]
)
test_ingest_invariant = IngestInvariant.TestCase
