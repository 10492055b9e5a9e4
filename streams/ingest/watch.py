"""LIST then WATCH core/v1 Events in a thread, via :class:`streams.kube.api.KubeApi`; items reach the loop in batches.

A :class:`Watcher` covers one scope (all namespaces, or one) for one leadership term
(``generation``): it lists (paginated) unless it resumes from a checkpoint, then watches from the
resourceVersion reached, with bookmarks, and lists again after ``410 Gone``. It decides nothing
about leadership: the ingest controller on the event loop starts and stops it.

Items go into a :class:`Handoff`: a bounded buffer the watch threads append to and the loop takes
from, everything buffered at once. The thread wakes the loop only when the buffer goes from empty
to non-empty, so while the loop is busy the items pile up into one batch instead of costing one
thread-to-loop round trip each; a full buffer blocks the thread (back-pressure: a slow Kafka slows
the watch instead of filling memory).
"""

from __future__ import annotations

import functools
import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Literal, Protocol

from streams.core import logs, metrics
from streams.core.backoff import Backoff
from streams.core.clock import Clock
from streams.kube.api import HTTP_GONE, ApiError, Disconnected, IdleTimeout, KubeApi, Response

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class WatchItem:
    """One thing the watch saw.

    ``listed``/``added``/``modified``: an event version. ``synced``: a LIST finished (the
    resourceVersion is now a consistent point). ``bookmark``: the watch progressed to
    ``resource_version`` with no event to deliver.
    """

    kind: Literal["listed", "added", "modified", "synced", "bookmark"]
    resource_version: str
    event: dict[str, Any] | None = None


#: (generation, scope, item): the generation tells the loop which term's watcher produced it.
Tagged = tuple[int, str, WatchItem]


class WatchStopped(Exception):
    """The watcher was asked to stop."""


class Gone(Exception):
    """The resourceVersion fell out of the API server's watch window (410): list again."""


#: Watches from the same resourceVersion after a 410, on a new connection, before listing again. A
#: control plane is several API servers behind one address, and a 410 is one server's answer: a server
#: whose watch cache has just started knows nothing older than its start, while another (or etcd)
#: still serves every version since. A relist shows only each event's newest version, so the versions
#: superseded in between would be lost; a retry that reaches such a server loses nothing.
GONE_RETRIES = 2
GONE_RETRY_DELAY = 0.5


class Output(Protocol):
    def put(self, tagged: Tagged, stop: threading.Event) -> None:
        """Hand one item on; may block (back-pressure); raise :class:`WatchStopped` once ``stop`` is set."""
        ...


class Handoff:
    """Items from the watch threads to the loop; bounded, taken in batches.

    ``wake`` is called on the producing thread whenever the buffer goes from empty to non-empty;
    the loop's side binds it to ``loop.call_soon_threadsafe(event.set)``.
    """

    def __init__(self, capacity: int, wake: Callable[[], None]) -> None:
        self._capacity = max(1, capacity)
        self._wake = wake
        self._items: list[Tagged] = []
        self._ready = threading.Condition()

    def put(self, tagged: Tagged, stop: threading.Event) -> None:
        with self._ready:
            while len(self._items) >= self._capacity:
                if stop.is_set():
                    raise WatchStopped
                # Woken by take() or release(); the timeout only guards against a missed notify.
                self._ready.wait(1.0)
            if stop.is_set():
                raise WatchStopped
            was_empty = not self._items
            self._items.append(tagged)
        if was_empty:
            self._wake()

    def take(self, limit: int) -> tuple[list[Tagged], bool]:
        """Up to ``limit`` items, oldest first, and whether more remain."""
        with self._ready:
            batch = self._items[:limit]
            del self._items[:limit]
            more = bool(self._items)
            self._ready.notify_all()
        return batch, more

    def release(self) -> None:
        """Wake blocked producers so they see their stop flag."""
        with self._ready:
            self._ready.notify_all()

    def __len__(self) -> int:
        with self._ready:
            return len(self._items)


#: (generation, scope, ok, detail): the watch's state for /readyz and ``k8sev_watch_up``.
StatusReport = Callable[[int, str, bool, str], None]


@dataclass(frozen=True)
class WatchSettings:
    page_size: int = 500
    watch_timeout: float = 60.0
    idle_timeout: float = 90.0
    stall_after: float = 120.0
    event_ttl: float = 3600.0


class Watcher:
    """LIST+WATCH of one scope for one term; :meth:`run` is the thread's body, :meth:`stop` may come from any thread."""

    def __init__(
        self,
        api: KubeApi,
        out: Output,
        clock: Clock,
        *,
        namespace: str | None,
        generation: int,
        settings: WatchSettings,
        resume: tuple[str, datetime] | None = None,
        status: StatusReport | None = None,
        backoff: Backoff | None = None,
    ) -> None:
        self._api = api
        self._out = out
        self._clock = clock
        self._namespace = namespace
        self.generation = generation
        self._settings = settings
        self.resource_version: str | None = resume[0] if resume else None
        # When the watch last made progress: a 410 after a long pause may mean events expired unseen.
        self._progress_at = resume[1] if resume else clock.now()
        # When the watch last heard anything (an event, a bookmark, a LIST, a check that found nothing newer).
        self._heard_at = clock.monotonic()
        self._status = status or (lambda *_: None)
        self._backoff = backoff or Backoff(1.0, 30.0)
        self._stop = threading.Event()
        self._response: Response | None = None
        self._lock = threading.Lock()

    @property
    def scope(self) -> str:
        return self._namespace or "*"

    @property
    def stopped(self) -> bool:
        return self._stop.is_set()

    def stop(self) -> None:
        """Ask the thread to end; closes the request in flight (LIST page or WATCH) so a blocked read returns."""
        self._stop.set()
        with self._lock:
            response, self._response = self._response, None
        if response is not None:
            response.close()
        release = getattr(self._out, "release", None)
        if release is not None:
            release()

    def run(self) -> None:
        # (resourceVersion, how many 410s in a row answered a watch from it).
        gone_at: tuple[str | None, int] = (None, 0)
        while not self._stop.is_set():
            try:
                if self.resource_version is None:
                    self.resource_version = self._list()
                elif self._stalled(self.resource_version):
                    self.resource_version = None
                    continue
                self._watch(self.resource_version)
                self._backoff.reset()
            except WatchStopped:
                break
            except Gone:
                metrics.WATCH_RESTARTS.labels(cause="gone").inc()
                at = self.resource_version
                gone_at = (at, gone_at[1] + 1 if gone_at[0] == at else 1)
                if gone_at[1] <= GONE_RETRIES:
                    logs.warning(log, "watch_gone_retry", scope=self.scope, resource_version=at, attempt=gone_at[1])
                    if self._clock.wait(self._stop, GONE_RETRY_DELAY):
                        break
                    continue
                logs.warning(log, "watch_expired", scope=self.scope, resource_version=at, answers=gone_at[1])
                self._report_gap()
                self.resource_version = None
            except Exception as exc:  # noqa: BLE001 - any failure: back off and resume from where it got to
                if self._stop.is_set():
                    break
                cause = _cause(exc)
                self._status(self.generation, self.scope, False, f"{cause}: {_short(exc)}")
                metrics.WATCH_RESTARTS.labels(cause=cause).inc()
                delay = self._backoff.next()
                logs.warning(
                    log, "watch_failed", scope=self.scope, cause=cause, error=_short(exc), retry_in=round(delay, 2)
                )
                if self._clock.wait(self._stop, delay):
                    break
        self._status(self.generation, self.scope, False, "stopped")
        logs.info(log, "watch_stopped", scope=self.scope, resource_version=self.resource_version)

    def _report_gap(self) -> None:
        """Events that happened after the last progress but expired (TTL) before this relist are gone.

        Which ones cannot be known; that it may have happened, and when, can.
        """
        lost_until = self._clock.now() - timedelta(seconds=self._settings.event_ttl)
        if lost_until <= self._progress_at:
            return
        seconds = (lost_until - self._progress_at).total_seconds()
        metrics.WATCH_GAPS.inc()
        metrics.WATCH_GAP_SECONDS.inc(seconds)
        logs.error(
            log,
            "possible_event_loss",
            scope=self.scope,
            since=self._progress_at.isoformat(),
            until=lost_until.isoformat(),
            seconds=round(seconds, 1),
            reason="watch expired after a pause longer than the API server's event TTL",
        )

    def _stalled(self, resource_version: str) -> bool:
        """After ``stall_after`` of silence: does the scope hold an event newer than the watch got to?

        A silent watch is normal in a quiet scope, so silence alone proves nothing; an event the LIST
        shows past ``resource_version`` that the watch never delivered does. resourceVersions are
        compared as etcd revisions (integers); a server whose versions are not integers is not checked.
        """
        silent = self._clock.monotonic() - self._heard_at
        if silent < self._settings.stall_after or not resource_version.isdigit():
            return False
        newer = self._newer_than(int(resource_version))
        self._heard_at = self._clock.monotonic()
        if newer is None:
            return False
        metrics.WATCH_STALLS.inc()
        detail = f"stalled at resourceVersion {resource_version}: the scope has {newer}, never delivered"
        self._status(self.generation, self.scope, False, detail)
        logs.error(
            log,
            "watch_stalled",
            scope=self.scope,
            resource_version=resource_version,
            newer_resource_version=newer,
            silent_s=round(silent, 1),
            action="relist",
        )
        # Versions superseded during the stall are gone: the LIST shows only the newest of each.
        metrics.WATCH_GAPS.inc()
        return True

    def _newer_than(self, resource_version: int) -> str | None:
        """The resourceVersion of an event of the scope newer than ``resource_version``, if any (a paged LIST)."""
        token: str | None = None
        while True:
            body = self._page(token)
            self._check_stop()
            for item in body.get("items") or ():
                found = _rv(item)
                if found.isdigit() and int(found) > resource_version:
                    return found
            token = (body.get("metadata") or {}).get("continue") or None
            if not token:
                return None

    def _page(self, token: str | None) -> dict[str, Any]:
        """One page of a LIST of the scope, read whole; the request is closable by :meth:`stop` meanwhile."""
        page = functools.partial(
            self._api.list_events, self._namespace, limit=self._settings.page_size, continue_token=token
        )
        response = self._open(page)
        try:
            return response.json()
        finally:
            self._done(response)

    def _open(self, call: Callable[[], Response]) -> Response:
        """Run ``call`` and keep its response where :meth:`stop` can close it."""
        self._check_stop()
        response = call()
        with self._lock:
            if self._stop.is_set():
                response.close()
                raise WatchStopped
            self._response = response
        return response

    def _done(self, response: Response) -> None:
        with self._lock:
            if self._response is response:
                self._response = None
        response.close()

    def _list(self) -> str:
        """A paginated LIST; every item is handed on; returns the list's resourceVersion."""
        metrics.WATCH_RELISTS.inc()
        # Not ready while listing (also after a 410): the watch is not streaming yet.
        self._status(self.generation, self.scope, False, "listing")
        started = self._clock.monotonic()
        token: str | None = None
        total = 0
        while True:
            try:
                body = self._page(token)
            except ApiError as exc:
                if exc.status == HTTP_GONE and token:
                    # The continue token expired mid-list: start the LIST over.
                    logs.warning(log, "list_continue_expired", scope=self.scope, listed=total)
                    token = None
                    continue
                raise
            except Disconnected:
                self._check_stop()
                raise
            self._check_stop()
            meta = body.get("metadata") or {}
            for item in body.get("items") or ():
                # Items of a List carry no kind/apiVersion; watch objects do. Keep one shape.
                item.setdefault("kind", "Event")
                item.setdefault("apiVersion", "v1")
                self._put(WatchItem("listed", _rv(item), item))
                total += 1
            token = meta.get("continue") or None
            if not token:
                resource_version = str(meta.get("resourceVersion") or "")
                break
        self._put(WatchItem("synced", resource_version))
        self._progress_at = self._clock.now()
        self._heard_at = self._clock.monotonic()
        logs.info(
            log,
            "list_done",
            scope=self.scope,
            events=total,
            resource_version=resource_version,
            seconds=round(self._clock.monotonic() - started, 3),
        )
        return resource_version

    def _watch(self, resource_version: str) -> None:
        response = self._open(
            lambda: self._api.watch_events(
                self._namespace,
                resource_version=resource_version,
                timeout_seconds=int(self._settings.watch_timeout),
                # The read timeout bounds silence. A quiet scope may get nothing, not even a bookmark,
                # until the server ends the WATCH; the idle timeout is longer than that, so a longer
                # silence means a dead connection.
                idle_timeout=self._settings.idle_timeout,
            )
        )
        self._status(self.generation, self.scope, True, "streaming")
        logs.info(log, "watch_started", scope=self.scope, resource_version=resource_version)
        try:
            for notification in response.notifications():
                self._check_stop()
                self._handle(notification)
        except (Disconnected, IdleTimeout):
            self._check_stop()
            raise
        finally:
            self._done(response)
        self._check_stop()
        # The server ends every WATCH after timeout_seconds; resume from where it got to.
        metrics.WATCH_RESTARTS.labels(cause="timeout").inc()

    def _handle(self, notification: dict[str, Any]) -> None:
        kind = notification.get("type")
        obj = notification.get("object") or {}
        if kind == "ERROR":
            if obj.get("code") == HTTP_GONE:
                raise Gone(obj.get("message", ""))
            raise ApiError(int(obj.get("code") or 0), str(obj.get("reason") or ""), str(obj.get("message") or ""))
        resource_version = _rv(obj)
        self._progress_at = self._clock.now()
        self._heard_at = self._clock.monotonic()
        if kind == "BOOKMARK":
            self.resource_version = resource_version or self.resource_version
            self._put(WatchItem("bookmark", self.resource_version or ""))
            return
        if kind == "DELETED":
            # etcd's TTL removing an event: not an occurrence, nothing new to keep.
            metrics.WATCH_DELETIONS.inc()
            self.resource_version = resource_version or self.resource_version
            return
        if kind in ("ADDED", "MODIFIED"):
            self._put(WatchItem("added" if kind == "ADDED" else "modified", resource_version, obj))
            self.resource_version = resource_version or self.resource_version
            return
        logs.warning(log, "watch_unknown_type", scope=self.scope, type=kind)

    def _put(self, item: WatchItem) -> None:
        self._out.put((self.generation, self.scope, item), self._stop)

    def _check_stop(self) -> None:
        if self._stop.is_set():
            raise WatchStopped


def _rv(obj: dict[str, Any]) -> str:
    meta = obj.get("metadata")
    value = meta.get("resourceVersion") if isinstance(meta, dict) else None
    return value if isinstance(value, str) else ""


def _cause(exc: Exception) -> str:
    if isinstance(exc, IdleTimeout):
        return "idle"
    if isinstance(exc, ApiError):
        return f"http_{exc.status}"
    if isinstance(exc, Disconnected):
        return "connection"
    return "error"


def _short(exc: Exception) -> str:
    text = str(exc).strip().splitlines()
    return (text[0] if text else type(exc).__name__)[:300]
