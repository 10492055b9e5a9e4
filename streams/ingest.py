"""The ingest machinery: watchers started and stopped by leadership, sends tracked to a checkpoint.

:class:`AckTracker` keeps, per watched scope, the sends in the order the watch produced them and
moves the checkpoint to a resourceVersion only once Kafka acknowledged every event up to it. LIST
items never move it (they arrive in no useful order); the end of a LIST moves it to the list's
resourceVersion; watch events and bookmarks move it to theirs.
"""

from __future__ import annotations

import asyncio
import collections
import functools
import logging
from collections.abc import Awaitable, Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from kubernetes import client

from streams import logs
from streams.kube_watch import EventWatcher, WatchItem
from streams.leader import Checkpoint
from streams.settings import Settings

log = logging.getLogger(__name__)


@dataclass
class _Pending:
    resource_version: str
    future: asyncio.Future[Any] | None
    advances: bool


class SendFailed(Exception):
    """Kafka did not acknowledge an event (the producer gave up after its retries)."""


class AckTracker:
    """Per scope: the newest resourceVersion whose events (and everything before) Kafka acknowledged."""

    def __init__(self) -> None:
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
                self._acked[scope] = (head.resource_version, datetime.now(UTC))

    def reset(self, scope: str) -> None:
        """Forget what is pending (a new watch starts over from the checkpoint)."""
        self._pending[scope].clear()

    def pending(self, scope: str) -> int:
        return len(self._pending[scope])

    def acked(self, scope: str) -> tuple[str, datetime] | None:
        return self._acked.get(scope)

    def seed(self, scope: str, resource_version: str, when: datetime) -> None:
        self._acked[scope] = (resource_version, when)

    def checkpoint(self) -> Checkpoint:
        snapshot = Checkpoint()
        for scope, (rv, when) in list(self._acked.items()):
            snapshot.set(scope, rv, when)
        return snapshot


Publish = Callable[[dict[str, Any]], Awaitable["asyncio.Future[Any] | None"]]


class Ingest:
    """Starts one :class:`EventWatcher` per scope while this worker leads; drains their queue."""

    def __init__(
        self,
        settings: Settings,
        api: client.CoreV1Api,
        loop: asyncio.AbstractEventLoop,
        publish: Publish,
    ) -> None:
        self._settings = settings
        self._api = api
        self._loop = loop
        self._publish = publish
        self.scopes: list[str | None] = list(settings.kube.namespaces) or [None]
        self.queue: asyncio.Queue[tuple[int, str, WatchItem]] = asyncio.Queue(maxsize=settings.stages.ingest_queue)
        self.tracker = AckTracker()
        self._watchers: list[EventWatcher] = []
        self._threads: list[asyncio.Future[None]] = []
        self._pool = ThreadPoolExecutor(max_workers=len(self.scopes) + 1, thread_name_prefix="k8s-watch")
        # Items queued by watchers of an earlier leadership term carry an older generation.
        self._generation = 0

    @staticmethod
    def scope_name(scope: str | None) -> str:
        return scope or "*"

    def start(self, checkpoint: Checkpoint) -> None:
        """Start watching from ``checkpoint`` (loop thread only)."""
        self.stop()
        self._generation += 1
        generation = self._generation
        for scope in self.scopes:
            name = self.scope_name(scope)
            self.tracker.reset(name)
            resume = checkpoint.get(name)
            if resume:
                self.tracker.seed(name, *resume)
            watcher = EventWatcher(
                self._api,
                self.queue,
                self._loop,
                namespace=scope,
                page_size=self._settings.kube.list_page_size,
                watch_timeout=self._settings.kube.watch_timeout,
                idle_timeout=self._settings.kube.watch_idle_timeout,
                resource_version=resume[0] if resume else None,
                resumed_at=resume[1] if resume else None,
                event_ttl=self._settings.kube.event_ttl,
                tag=generation,
            )
            self._watchers.append(watcher)
            self._threads.append(self._loop.run_in_executor(self._pool, watcher.run))
            logs.info(log, "watch_scheduled", scope=name, resume_from=resume[0] if resume else "list")

    def stop(self) -> None:
        """Stop every watcher now; safe from any thread (closes their connections)."""
        for watcher in self._watchers:
            watcher.stop()
        self._watchers = []
        self._generation += 1

    async def close(self) -> None:
        self.stop()
        await asyncio.gather(*self._threads, return_exceptions=True)
        self._pool.shutdown(wait=False)

    async def drain(self, keep: Callable[[dict[str, Any]], str | None], on_filtered: Callable[[str], None]) -> None:
        """Forever: take watch items, publish events, track acknowledgements per scope."""
        while True:
            generation, scope, item = await self.queue.get()
            if generation != self._generation:
                # From a watcher already stopped: its events may be published (dedup drops
                # repeats) but must not move the checkpoint of the current term.
                if item.event is not None and keep(item.event) is None:
                    await self._publish(item.event)
                continue
            future: asyncio.Future[Any] | None = None
            if item.event is not None:
                dropped_by = keep(item.event)
                if dropped_by:
                    on_filtered(dropped_by)
                else:
                    future = await self._publish(item.event)
            advances = item.kind in ("added", "modified", "bookmark", "synced")
            try:
                self.tracker.add(scope, item.resource_version, future, advances)
                if future is not None:
                    future.add_done_callback(functools.partial(self._settle_later, scope))
            except SendFailed as exc:
                logs.error(
                    log, "kafka_send_failed", scope=scope, error=str(exc)[:300], action="rewatch_from_checkpoint"
                )
                self.start(self.tracker.checkpoint())

    def settle_all(self) -> None:
        for scope in self.scopes:
            self.tracker.settle(self.scope_name(scope))

    def _settle_later(self, scope: str, _: object = None) -> None:
        try:
            self.tracker.settle(scope)
        except SendFailed as exc:
            logs.error(log, "kafka_send_failed", scope=scope, error=str(exc)[:300], action="rewatch_from_checkpoint")
            self.start(self.tracker.checkpoint())
