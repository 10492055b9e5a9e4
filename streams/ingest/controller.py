"""The ingest controller: one owner, on the event loop, for leadership, watchers, terms and the checkpoint.

Threads only post: the elector posts :class:`streams.ingest.election.Started`/``Stopped``/``LeaseHealth``
(through :meth:`IngestController.post`), the watchers append items to one
:class:`streams.ingest.watch.Handoff` and report their state. Everything is decided here, on the loop:

- a term starts: the tracker is seeded from the Lease's checkpoint and one watcher per scope
  starts, tagged with a new *generation*;
- a term ends (or a send failed): the generation moves on, the watchers are told to stop, and
  every item still buffered or arriving from them is dropped, never published;
- a failed Kafka send rewatches from the last acknowledged checkpoint, only while leading.

:class:`AckTracker` keeps, per watched scope, the sends in the order the watch produced them and
moves the checkpoint to a resourceVersion only once Kafka acknowledged every event up to it. LIST
items never move it (they arrive in no useful order); the end of a LIST moves it to the list's
resourceVersion; watch events and bookmarks move it to theirs.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import functools
import logging
import threading
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Protocol

from streams.core import logs, metrics
from streams.core.clock import Clock
from streams.core.health import Probes
from streams.ingest.checkpoint import Checkpoint
from streams.ingest.election import LeaseHealth, Message, Started, Stopped
from streams.ingest.watch import Handoff, Watcher, WatchItem, WatchSettings
from streams.kube.api import KubeApi

log = logging.getLogger(__name__)

#: Items handled per wake-up of the loop before it yields to other tasks.
BATCH_LIMIT = 500


@dataclass
class _Pending:
    resource_version: str
    future: asyncio.Future[Any] | None
    advances: bool


class SendFailed(Exception):
    """Kafka did not acknowledge an event (the producer gave up after its retries)."""


class AckTracker:
    """Per scope: the newest resourceVersion whose events (and everything before) Kafka acknowledged."""

    def __init__(self, now: Callable[[], datetime]) -> None:
        self._now = now
        self._pending: dict[str, collections.deque[_Pending]] = collections.defaultdict(collections.deque)
        self._acked: dict[str, tuple[str, datetime]] = {}

    def add(self, scope: str, resource_version: str, future: asyncio.Future[Any] | None, advances: bool) -> None:
        self._pending[scope].append(_Pending(resource_version, future, advances))
        self.settle(scope)

    def settle(self, scope: str) -> None:
        """Move the checkpoint over every leading entry that is done; raise if a send failed."""
        queue = self._pending[scope]
        while queue:
            head = queue[0]
            if head.future is not None:
                if not head.future.done():
                    return
                if head.future.cancelled() or head.future.exception() is not None:
                    error = "cancelled" if head.future.cancelled() else head.future.exception()
                    raise SendFailed(f"send of resourceVersion {head.resource_version} failed: {error}")
            queue.popleft()
            if head.advances and head.resource_version:
                self._acked[scope] = (head.resource_version, self._now())

    def reset(self, scope: str, resume: tuple[str, datetime] | None) -> None:
        """A new watch of ``scope`` starts over from ``resume``: forget what is pending."""
        self._pending[scope].clear()
        if resume is None:
            self._acked.pop(scope, None)
        else:
            self._acked[scope] = resume

    def pending(self, scope: str) -> int:
        return len(self._pending[scope])

    def in_flight(self) -> list[asyncio.Future[Any]]:
        return [p.future for q in self._pending.values() for p in q if p.future is not None and not p.future.done()]

    def acked(self, scope: str) -> tuple[str, datetime] | None:
        return self._acked.get(scope)

    def checkpoint(self) -> Checkpoint:
        """A copy; safe to call from another thread (a dict copy of immutable tuples)."""
        snapshot = Checkpoint()
        for scope, (rv, when) in dict(self._acked).items():
            snapshot.set(scope, rv, when)
        return snapshot


Publish = Callable[[dict[str, Any]], Awaitable["asyncio.Future[Any] | None"]]


class Thread(Protocol):
    def join(self, timeout: float | None = None) -> None: ...

    def is_alive(self) -> bool: ...


Spawn = Callable[[str, Callable[[], None]], Thread]


def spawn_thread(name: str, target: Callable[[], None]) -> Thread:
    thread = threading.Thread(target=target, name=name, daemon=True)
    thread.start()
    return thread


class ElectionLoop(Protocol):
    """What the controller needs of :class:`streams.ingest.election.Elector`: a loop for a thread, and its end."""

    def run(self) -> None: ...

    def stop(self, final: Checkpoint | None = None) -> None: ...


def scope_name(scope: str | None) -> str:
    return scope or "*"


class IngestController:
    """Owns ingest on ``loop``: start it with :meth:`elect`, drive it with :meth:`run`, end it with :meth:`stop`."""

    def __init__(
        self,
        loop: asyncio.AbstractEventLoop,
        api: KubeApi,
        clock: Clock,
        *,
        scopes: Sequence[str | None],
        watch: WatchSettings,
        capacity: int,
        publish: Publish,
        keep: Callable[[dict[str, Any]], str | None],
        on_filtered: Callable[[str], None] = lambda _: None,
        spawn: Spawn = spawn_thread,
        health: Probes | None = None,
    ) -> None:
        self._loop = loop
        self._api = api
        self._clock = clock
        self.health = health or Probes()
        self.scopes = list(scopes) or [None]
        self._watch = watch
        self._publish = publish
        self._keep = keep
        self._on_filtered = on_filtered
        self._spawn = spawn
        self._wakeup = asyncio.Event()
        self.handoff = Handoff(capacity, self._wake)
        self.tracker = AckTracker(clock.now)
        self.watchers: list[Watcher] = []
        self._threads: list[Thread] = []
        self._elector: ElectionLoop | None = None
        self._election: Thread | None = None
        # The term the elector granted (0: none yet) and whether it is still ours.
        self.term = 0
        self.leading = False
        # Bumped whenever watchers stop or restart: items and acks of older generations are stale.
        self.generation = 0
        self.stopping = False
        self.dropped = 0

    # --- from other threads ------------------------------------------------------------------

    def post(self, message: Message) -> None:
        """Any thread: hand ``message`` to the loop (the elector's only way to act)."""
        self._loop.call_soon_threadsafe(self.handle, message)

    def checkpoint_of(self, term: int) -> Checkpoint | None:
        """Any thread: the checkpoint to store in the Lease for ``term``, or None if that term is not current."""
        if term != self.term or not self.leading:
            return None
        return self.tracker.checkpoint()

    def _wake(self) -> None:
        self._loop.call_soon_threadsafe(self._wakeup.set)

    def _watch_status(self, generation: int, scope: str, ok: bool, detail: str) -> None:
        self._loop.call_soon_threadsafe(self._set_watch_status, generation, scope, ok, detail)

    # --- on the loop -------------------------------------------------------------------------

    def elect(self, elector: ElectionLoop) -> None:
        """Run ``elector`` in its own thread; its messages arrive through :meth:`post`."""
        self.health.readiness.set("ingest", True, "following")
        # Not ready before the first round of the election: this worker may be about to lead, and a
        # leader is ready only once its watch streams (a LIST not yet taken misses nothing only if
        # nobody was told this worker is collecting).
        self.health.readiness.set("lease", False, "not checked yet")
        self._elector = elector
        self.health.liveness.set("election", True, "running")

        def election() -> None:
            # /healthz must fail if the election dies: nobody would ever watch again.
            try:
                elector.run()
            except BaseException as exc:
                self.health.liveness.set("election", False, f"thread died: {type(exc).__name__}: {str(exc)[:200]}")
                raise
            if not self.stopping:
                self.health.liveness.set("election", False, "thread ended while ingest runs")

        self._election = self._spawn("ingest-election", election)

    def handle(self, message: Message) -> None:
        if isinstance(message, LeaseHealth):
            self.health.readiness.set("lease", message.ok, message.detail)
            return
        if self.stopping:
            return
        if isinstance(message, Started):
            self.term, self.leading = message.term, True
            self.health.readiness.set("ingest", True, "leading")
            self._start_watchers(message.checkpoint)
        elif isinstance(message, Stopped) and message.term == self.term and self.leading:
            self.leading = False
            self._stop_watchers()
            self.health.readiness.set("ingest", True, "following")
            logs.info(log, "watch_stopped_on_leadership_loss", term=message.term, reason=message.reason)

    def _start_watchers(self, checkpoint: Checkpoint) -> None:
        self._stop_watchers()
        for scope in self.scopes:
            name = scope_name(scope)
            resume = checkpoint.get(name)
            self.tracker.reset(name, resume)
            watcher = Watcher(
                self._api,
                self.handoff,
                self._clock,
                namespace=scope,
                generation=self.generation,
                settings=self._watch,
                resume=resume,
                status=self._watch_status,
            )
            self.watchers.append(watcher)
            # Ready only once the WATCH is open: until then versions written now may be superseded
            # before the LIST reads them, so the worker must not say it is collecting.
            self._set_watch_status(self.generation, name, False, "listing" if resume is None else "resuming")
            self._threads.append(self._spawn(f"k8s-watch-{name}", watcher.run))
            logs.info(log, "watch_scheduled", scope=name, resume_from=resume[0] if resume else "list", term=self.term)

    def _stop_watchers(self) -> None:
        self.generation += 1
        for watcher in self.watchers:
            watcher.stop()
        self.watchers = []
        self._threads = [t for t in self._threads if t.is_alive()]
        self.health.readiness.drop("watch[")
        metrics.WATCH_UP.set(0)

    def _set_watch_status(self, generation: int, scope: str, ok: bool, detail: str) -> None:
        if generation != self.generation or not self.leading:
            return
        self.health.readiness.set(f"watch[{scope}]", ok, detail)
        metrics.WATCH_UP.set(1 if ok else 0)

    async def run(self) -> None:
        """Forever: take the buffered watch items in batches, publish events, track acknowledgements."""
        while True:
            await self._wakeup.wait()
            self._wakeup.clear()
            batch, more = self.handoff.take(BATCH_LIMIT)
            if more:
                self._wakeup.set()
            for generation, scope, item in batch:
                if generation != self.generation or not self.leading or self.stopping:
                    self._drop()
                    continue
                await self._item(generation, scope, item)
            if more:
                # A long backlog must not starve the loop's other tasks.
                await asyncio.sleep(0)

    def _drop(self) -> None:
        self.dropped += 1
        metrics.INGEST_STALE_DROPPED.inc()

    async def _item(self, generation: int, scope: str, item: WatchItem) -> None:
        future: asyncio.Future[Any] | None = None
        if item.event is not None:
            dropped_by = self._keep(item.event)
            if dropped_by:
                self._on_filtered(dropped_by)
            else:
                try:
                    future = await self._publish(item.event)
                except Exception as exc:  # noqa: BLE001 - a send refused at once is a failed send, not a crash
                    if generation == self.generation:
                        self._send_failed(scope, SendFailed(f"send of {item.resource_version} refused: {exc!r}"))
                    return
        if generation != self.generation:
            return  # the term ended while this one was being sent: it moves no checkpoint
        advances = item.kind in ("added", "modified", "bookmark", "synced")
        try:
            self.tracker.add(scope, item.resource_version, future, advances)
        except SendFailed as exc:
            self._send_failed(scope, exc)
            return
        if future is not None and not future.done():
            future.add_done_callback(functools.partial(self._settle_later, scope, generation))

    def _settle_later(self, scope: str, generation: int, _: object = None) -> None:
        if generation != self.generation:
            return
        try:
            self.tracker.settle(scope)
        except SendFailed as exc:
            self._send_failed(scope, exc)

    def _send_failed(self, scope: str, exc: SendFailed) -> None:
        if self.leading and not self.stopping:
            logs.error(log, "kafka_send_failed", scope=scope, error=str(exc)[:300], action="rewatch_from_checkpoint")
            self._start_watchers(self.tracker.checkpoint())
        else:
            # A follower never writes the raw topic: the next leader resends from the Lease's checkpoint.
            logs.error(log, "kafka_send_failed", scope=scope, error=str(exc)[:300], action="none_not_leading")
            self._stop_watchers()

    async def stop(self, deadline: float) -> Checkpoint | None:
        """End ingest by ``deadline`` (``clock.monotonic()`` seconds); returns the checkpoint released with.

        Stops the watchers, waits for the sends in flight (leaving time for the Lease), hands the Lease
        back with the last acknowledged checkpoint, and joins the threads; whatever is not done by the
        deadline is left behind (daemon threads) and logged.
        """
        if self.stopping:
            return None
        self.stopping = True
        leading = self.leading
        self._stop_watchers()
        final: Checkpoint | None = None
        if leading:
            # Half of what remains, at most 5 s of it, is kept for the Lease write.
            remaining = deadline - self._clock.monotonic()
            budget = remaining - min(remaining / 2, 5.0)
            pending = self.tracker.in_flight()
            if pending and budget > 0:
                _, late = await asyncio.wait(pending, timeout=budget)
                if late:
                    logs.warning(log, "ingest_stop_sends_unacknowledged", sends=len(late))
            for scope in self.scopes:
                with contextlib.suppress(SendFailed):
                    self.tracker.settle(scope_name(scope))
            final = self.tracker.checkpoint()
        if self._elector is not None:
            self._elector.stop(final)
        threads = [t for t in (self._election, *self._threads) if t is not None]
        for thread in threads:
            remaining = deadline - self._clock.monotonic()
            if remaining > 0:
                await asyncio.to_thread(thread.join, remaining)
        late_threads = [t for t in threads if t.is_alive()]
        if late_threads:
            logs.warning(log, "ingest_stop_timeout", threads=len(late_threads))
        self.leading = False
        self.health.readiness.drop("ingest")
        logs.info(log, "ingest_stopped", checkpoint=final.encode()[:300] if final else "")
        return final
