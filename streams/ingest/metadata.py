"""Enrichment: the metadata of the objects events are about, kept from metadata-only watches, and added to each event.

The ingest leader runs one :class:`MetadataWatcher` per configured resource (Pods, ReplicaSets,
Deployments, ... and any custom resource by group/version/resource). Each LISTs then WATCHes only
``PartialObjectMetadata``: names, uids, labels and owner references, never an object's body (so
never a Secret's data, and a fraction of a Pod's bytes). Watch threads only hand items over (a
bounded :class:`Batches`, so a busy loop slows the watch instead of growing memory); the
:class:`MetadataCache` lives on the event loop, is bounded (an LRU over uids) and keeps only what
enrichment needs: the allow-listed labels and the controller reference.

:meth:`MetadataCache.context` never waits for anything: what the cache does not know yet is counted
and passes without the field. An object's DELETED notification does not drop it; it stays for a
grace period so the events about its deletion (often written after it is gone) are enriched too.
"""

from __future__ import annotations

import asyncio
import contextlib
import fnmatch
import functools
import logging
import threading
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any, Generic, Literal, Protocol, TypeVar

from cachetools import LRUCache

from streams.config import values as setting_values
from streams.core import logs, metrics
from streams.core.backoff import Backoff
from streams.core.clock import Clock
from streams.core.health import Probes
from streams.ingest.election import Started
from streams.ingest.election import Stopped as LeaderStopped
from streams.kube.api import (
    HTTP_FORBIDDEN,
    HTTP_GONE,
    HTTP_NOT_FOUND,
    ApiError,
    Disconnected,
    IdleTimeout,
    KubeApi,
    Response,
)

log = logging.getLogger(__name__)

#: The document's top-level field (docs/design.md, "Enrichment").
FIELD = "involvedObjectMeta"

#: Owner links followed at most: real chains are 1-3 deep (Pod -> ReplicaSet -> Deployment); a
#: cycle or a pathological custom controller must not loop.
MAX_CHAIN = 8

#: How often a refused (403) or unknown (404) resource is tried again: RBAC may be fixed meanwhile.
REFUSED_RETRY = 300.0


@dataclass(frozen=True, slots=True)
class Resource:
    """A watched resource: ``group`` ("" for the core group), ``version`` and the plural ``resource``."""

    group: str
    version: str
    resource: str

    @property
    def path(self) -> str:
        """The collection's path, cluster-wide (all namespaces)."""
        if self.group:
            return f"/apis/{self.group}/{self.version}/{self.resource}"
        return f"/api/{self.version}/{self.resource}"

    @property
    def name(self) -> str:
        """``kubectl``'s name for it (``pods``, ``replicasets.apps``): in logs, metrics and /readyz."""
        return f"{self.resource}.{self.group}" if self.group else self.resource


def parse_resource(text: str) -> Resource:
    """``v1/pods`` (core group) or ``apps/v1/replicasets`` or ``example.com/v1alpha1/widgets``."""
    return Resource(*setting_values.api_resource(text))


DEFAULT_RESOURCES = (
    "v1/pods",
    "apps/v1/replicasets",
    "apps/v1/deployments",
    "apps/v1/statefulsets",
    "apps/v1/daemonsets",
    "batch/v1/jobs",
    "batch/v1/cronjobs",
    "v1/nodes",
)
DEFAULT_LABELS = ("app.kubernetes.io/*", "app", "k8s-app", "component")

_NODES = Resource("", "v1", "nodes")

#: Seconds an event may wait for its object's watch to catch up (:meth:`Enrichment.enrich`), and how
#: long a resource whose watch did not is left out of such waits.
HOLD = 2.0
LATE_FOR = 60.0


class LabelAllow:
    """Which label keys an event keeps: exact keys, or ``prefix*`` globs (``app.kubernetes.io/*``)."""

    def __init__(self, patterns: Iterable[str]) -> None:
        self.patterns = tuple(patterns)
        self._exact = frozenset(p for p in self.patterns if "*" not in p)
        self._globs = tuple(p for p in self.patterns if "*" in p)

    def __call__(self, key: str) -> bool:
        return key in self._exact or any(fnmatch.fnmatchcase(key, g) for g in self._globs)


@dataclass(slots=True)
class Meta:
    """What the cache keeps of one object: little, so 100,000 of them stay small."""

    #: The allow-listed labels as ``key=value`` (sorted): the document's form, ready to copy.
    labels: tuple[str, ...]
    #: The controller reference (``controller: true``, else the first owner): (kind, name, uid).
    owner: tuple[str, str, str] | None
    #: ``Clock.monotonic()`` of the DELETED notification; None while the object exists.
    deleted_at: float | None = None


def _owner(meta: dict[str, Any]) -> tuple[str, str, str] | None:
    refs = [r for r in meta.get("ownerReferences") or () if isinstance(r, dict) and r.get("uid")]
    if not refs:
        return None
    ref = next((r for r in refs if r.get("controller")), refs[0])
    return (str(ref.get("kind") or ""), str(ref.get("name") or ""), str(ref["uid"]))


def to_meta(obj: dict[str, Any], allow: LabelAllow) -> Meta | None:
    """The cached form of a PartialObjectMetadata; None without a uid."""
    meta = obj.get("metadata")
    if not isinstance(meta, dict) or not meta.get("uid"):
        return None
    labels = meta.get("labels") or {}
    kept = tuple(sorted(f"{k}={v}" for k, v in labels.items() if isinstance(v, str) and allow(k)))
    return Meta(kept, _owner(meta))


# --- from the threads to the loop ------------------------------------------------------------------

T = TypeVar("T")


class Stopped(Exception):
    """The producer was asked to stop."""


class Batches(Generic[T]):
    """Items from threads to the loop: bounded (a full buffer blocks the thread), taken all at once.

    ``wake`` runs on the producing thread when the buffer goes from empty to non-empty (the loop's
    side binds it to ``loop.call_soon_threadsafe``), so a burst costs one wake-up, not one per item.
    The same design as :class:`streams.ingest.watch.Handoff`, for items that carry no checkpoint.
    """

    def __init__(self, capacity: int, wake: Callable[[], None]) -> None:
        self._capacity = max(1, capacity)
        self._wake = wake
        self._items: list[T] = []
        self._ready = threading.Condition()

    def put(self, item: T, stop: threading.Event) -> None:
        with self._ready:
            while len(self._items) >= self._capacity:
                if stop.is_set():
                    raise Stopped
                self._ready.wait(1.0)  # woken by take() or release(); the timeout guards a missed notify
            if stop.is_set():
                raise Stopped
            was_empty = not self._items
            self._items.append(item)
        if was_empty:
            self._wake()

    def take(self) -> list[T]:
        with self._ready:
            items, self._items = self._items, []
            self._ready.notify_all()
        return items

    def release(self) -> None:
        with self._ready:
            self._ready.notify_all()

    def __len__(self) -> int:
        with self._ready:
            return len(self._items)


@dataclass(frozen=True, slots=True)
class MetaItem:
    """One thing a metadata watch saw, for the loop: an object (``upsert``/``delete``) or a status."""

    kind: Literal["upsert", "delete", "status"]
    resource: Resource
    generation: int
    obj: dict[str, Any] | None = None
    ok: bool = True
    detail: str = ""
    #: A status's resourceVersion: the watch holds everything up to it (the point it starts from).
    resource_version: str = ""


class MetadataWatcher:
    """LIST+WATCH of one resource's metadata, cluster-wide; :meth:`run` is a thread's body.

    Nothing here checkpoints: a restart lists again (metadata LISTs are cheap and served from the
    watch cache). 403 and 404 are not errors of the watch but of its configuration: reported once
    (log line, status for /readyz), then tried again every :data:`REFUSED_RETRY` seconds.
    """

    def __init__(
        self,
        api: KubeApi,
        out: Batches[MetaItem],
        clock: Clock,
        resource: Resource,
        *,
        generation: int,
        page_size: int = 500,
        watch_timeout: float = 300.0,
        idle_timeout: float = 330.0,
        backoff: Backoff | None = None,
    ) -> None:
        self._api = api
        self._out = out
        self._clock = clock
        self.resource = resource
        self.generation = generation
        self._page_size = page_size
        self._watch_timeout = watch_timeout
        self._idle_timeout = idle_timeout
        self._backoff = backoff or Backoff(1.0, 60.0)
        self._stop = threading.Event()
        self._response: Response | None = None
        self._lock = threading.Lock()
        self.resource_version: str | None = None

    def stop(self) -> None:
        self._stop.set()
        with self._lock:
            response, self._response = self._response, None
        if response is not None:
            response.close()
        self._out.release()

    def run(self) -> None:
        name = self.resource.name
        refused: int | None = None
        while not self._stop.is_set():
            try:
                if self.resource_version is None:
                    self.resource_version = self._list()
                    if refused is not None:
                        logs.info(log, "enrich_watch_allowed", resource=name)
                        refused = None
                self._watch(self.resource_version)
                self._backoff.reset()
            except Stopped:
                break
            except _Gone:
                metrics.ENRICH_WATCH_RESTARTS.labels(resource=name, cause="gone").inc()
                self.resource_version = None
            except ApiError as exc:
                if self._stop.is_set():
                    break
                if exc.status in (HTTP_FORBIDDEN, HTTP_NOT_FOUND):
                    what = "forbidden" if exc.status == HTTP_FORBIDDEN else "not served"
                    self._status(False, f"{what} ({exc.status}): {exc.message[:200]}")
                    if refused != exc.status:
                        refused = exc.status
                        logs.error(
                            log,
                            "enrich_watch_refused",
                            resource=name,
                            status=exc.status,
                            reason=exc.reason,
                            error=exc.message[:300],
                            retry_in=REFUSED_RETRY,
                            effect="events about it and what it owns are not enriched",
                        )
                    self.resource_version = None
                    if self._clock.wait(self._stop, REFUSED_RETRY):
                        break
                    continue
                if self._failed(exc):
                    break
            except Exception as exc:  # noqa: BLE001 - any failure: back off and list again
                if self._stop.is_set() or self._failed(exc):
                    break
        logs.info(log, "enrich_watch_stopped", resource=name)

    def _failed(self, exc: Exception) -> bool:
        """Back off after ``exc``; True if asked to stop meanwhile."""
        cause = _cause(exc)
        metrics.ENRICH_WATCH_RESTARTS.labels(resource=self.resource.name, cause=cause).inc()
        self._status(False, f"{cause}: {str(exc)[:200]}")
        delay = self._backoff.next()
        logs.warning(
            log, "enrich_watch_failed", resource=self.resource.name, cause=cause, error=str(exc)[:300], retry_in=delay
        )
        return self._clock.wait(self._stop, delay)

    def _status(self, ok: bool, detail: str, resource_version: str = "") -> None:
        self._put(MetaItem("status", self.resource, self.generation, ok=ok, detail=detail,
                           resource_version=resource_version))  # fmt: skip

    def _put(self, item: MetaItem) -> None:
        self._out.put(item, self._stop)

    def _open(self, call: Callable[[], Response]) -> Response:
        if self._stop.is_set():
            raise Stopped
        response = call()
        with self._lock:
            if self._stop.is_set():
                response.close()
                raise Stopped
            self._response = response
        return response

    def _done(self, response: Response) -> None:
        with self._lock:
            if self._response is response:
                self._response = None
        response.close()

    def _list(self) -> str:
        token: str | None = None
        total = 0
        while True:
            response = self._open(
                functools.partial(
                    self._api.list_metadata, self.resource.path, limit=self._page_size, continue_token=token
                )
            )
            try:
                body = response.json()
            except ApiError as exc:
                if exc.status == HTTP_GONE and token:
                    token = None  # the continue token expired: list again from the start
                    continue
                raise
            finally:
                self._done(response)
            for item in body.get("items") or ():
                self._put(MetaItem("upsert", self.resource, self.generation, item))
                total += 1
            meta = body.get("metadata") or {}
            token = meta.get("continue") or None
            if not token:
                break
        logs.info(log, "enrich_list_done", resource=self.resource.name, objects=total)
        return str(meta.get("resourceVersion") or "")

    def _watch(self, resource_version: str) -> None:
        response = self._open(
            lambda: self._api.watch_metadata(
                self.resource.path,
                resource_version=resource_version,
                timeout_seconds=int(self._watch_timeout),
                idle_timeout=self._idle_timeout,
            )
        )
        self._status(True, "watching", resource_version)
        try:
            for note in response.notifications():
                if self._stop.is_set():
                    raise Stopped
                self._handle(note)
        except (Disconnected, IdleTimeout):
            if self._stop.is_set():
                raise Stopped from None
            raise
        finally:
            self._done(response)

    def _handle(self, note: dict[str, Any]) -> None:
        kind = note.get("type")
        obj = note.get("object") or {}
        if kind == "ERROR":
            if obj.get("code") == HTTP_GONE:
                raise _Gone
            raise ApiError(int(obj.get("code") or 0), str(obj.get("reason") or ""), str(obj.get("message") or ""))
        rv = (obj.get("metadata") or {}).get("resourceVersion")
        if kind in ("ADDED", "MODIFIED"):
            self._put(MetaItem("upsert", self.resource, self.generation, obj))
        elif kind == "DELETED":
            self._put(MetaItem("delete", self.resource, self.generation, obj))
        if isinstance(rv, str) and rv:
            self.resource_version = rv


class _Gone(Exception):
    pass


def _cause(exc: Exception) -> str:
    if isinstance(exc, IdleTimeout):
        return "idle"
    if isinstance(exc, ApiError):
        return f"http_{exc.status}"
    if isinstance(exc, Disconnected):
        return "connection"
    return "error"


# --- on the loop -----------------------------------------------------------------------------------


class MetadataCache:
    """uid -> :class:`Meta`, bounded (least recently used out first), on the event loop only."""

    def __init__(self, clock: Clock, *, size: int, grace: float, allow: LabelAllow) -> None:
        self._clock = clock
        self._grace = grace
        self._allow = allow
        self._entries: LRUCache[str, Meta] = LRUCache(maxsize=max(1, size))
        #: (group, plural) -> the newest resourceVersion of that resource the cache has taken in.
        self._reached: dict[tuple[str, str], int] = {}

    def __len__(self) -> int:
        return len(self._entries)

    def reached(self, resource: Resource, resource_version: str) -> None:
        """The cache holds ``resource`` up to ``resource_version`` (an object's, or a watch's start)."""
        if resource_version.isdigit():
            key = (resource.group, resource.resource)
            self._reached[key] = max(self._reached.get(key, 0), int(resource_version))

    def behind(self, event: dict[str, Any]) -> Resource | None:
        """The resource whose watch has not yet reached the version of ``event``'s object the event names.

        An event and its object come on two streams: a Pod's ``Scheduled`` can arrive before the Pod
        itself. etcd's revisions are one sequence, so an object version newer than what the cache took
        in says the cache is late, not that the object is unknown. Kinds map to plurals as the default
        resources do (``Pod`` -> ``pods``); an irregular plural is never waited for.
        """
        ref = event.get("involvedObject")
        if not isinstance(ref, dict):
            return None
        kind, api_version, rv = ref.get("kind"), ref.get("apiVersion"), ref.get("resourceVersion")
        if not (isinstance(kind, str) and isinstance(api_version, str) and isinstance(rv, str) and rv.isdigit()):
            return None
        group = api_version.rpartition("/")[0]
        key = (group, kind.lower() + "s")
        reached = self._reached.get(key)
        if reached is None or int(rv) <= reached:
            return None
        return Resource(group, api_version.rpartition("/")[2], key[1])

    def apply(self, item: MetaItem) -> None:
        """An object seen (``upsert``) or gone (``delete``, kept for the grace period)."""
        if item.obj is None:
            return
        self.reached(item.resource, str((item.obj.get("metadata") or {}).get("resourceVersion") or ""))
        meta = to_meta(item.obj, self._allow)
        if meta is None:
            return
        uid = str(item.obj["metadata"]["uid"])
        if item.kind == "delete":
            meta.deleted_at = self._clock.monotonic()
        self._entries[uid] = meta
        if item.resource == _NODES:
            # Kubelets write node events with the node's name as involvedObject.uid.
            name = item.obj["metadata"].get("name")
            if isinstance(name, str) and name:
                self._entries[name] = meta

    def get(self, uid: str) -> Meta | None:
        meta = self._entries.get(uid)
        if meta is not None and meta.deleted_at is not None and self._clock.monotonic() - meta.deleted_at > self._grace:
            del self._entries[uid]
            return None
        return meta

    def context(self, event: dict[str, Any]) -> dict[str, Any] | None:
        """The field for ``event`` (its involved object's labels and owner chain), or None if unknown."""
        ref = event.get("involvedObject")
        uid = ref.get("uid") if isinstance(ref, dict) else None
        if not isinstance(uid, str) or not uid:
            return None
        meta = self.get(uid)
        if meta is None:
            return None
        owners: list[dict[str, str]] = []
        seen = {uid}
        owner = meta.owner
        while owner is not None and len(owners) < MAX_CHAIN:
            kind, name, owner_uid = owner
            owners.append({"kind": kind, "name": name, "uid": owner_uid})
            if owner_uid in seen:
                break
            seen.add(owner_uid)
            parent = self.get(owner_uid)
            owner = parent.owner if parent is not None else None
        return {
            "labels": list(meta.labels),
            "owners": owners,
            # One keyword per owner, so "owned by Deployment web" is one term, never kind and name of two owners.
            "ownerRefs": [f"{o['kind']}/{o['name']}" for o in owners],
        }


class Enricher:
    """Adds :data:`FIELD` to events from ``cache``; counts the ones it could not, logs them at a bounded rate."""

    def __init__(self, cache: MetadataCache, clock: Clock, *, log_every: float = 60.0) -> None:
        self.cache = cache
        self._clock = clock
        self._log_every = log_every
        self._logged_at: float | None = None
        self._unlogged = 0

    def __call__(self, event: dict[str, Any]) -> dict[str, Any]:
        context = self.cache.context(event)
        if context is None:
            metrics.EVENTS_ENRICHED.labels(outcome="unknown").inc()
            self._miss(event)
            return event
        metrics.EVENTS_ENRICHED.labels(outcome="enriched").inc()
        return {**event, FIELD: context}

    def _miss(self, event: dict[str, Any]) -> None:
        self._unlogged += 1
        now = self._clock.monotonic()
        if self._logged_at is not None and now - self._logged_at < self._log_every:
            return
        ref = event.get("involvedObject")
        ref = ref if isinstance(ref, dict) else {}
        logs.info(
            log,
            "enrich_unknown_objects",
            events=self._unlogged,
            last_kind=str(ref.get("kind") or "")[:63],
            last_name=str(ref.get("name") or "")[:253],
            last_namespace=str(ref.get("namespace") or "")[:63],
            cache_objects=len(self.cache),
        )
        self._logged_at = now
        self._unlogged = 0


class Thread(Protocol):
    def join(self, timeout: float | None = None) -> None: ...

    def is_alive(self) -> bool: ...


def _spawn_thread(name: str, target: Callable[[], None]) -> Thread:
    thread = threading.Thread(target=target, name=name, daemon=True)
    thread.start()
    return thread


@dataclass(frozen=True)
class EnrichSettings:
    resources: tuple[Resource, ...]
    labels: LabelAllow
    cache_size: int
    grace: float
    page_size: int = 500
    queue: int = 1000


class Enrichment:
    """Owns the metadata watches and the cache on ``loop``, for the terms this worker leads.

    It follows leadership through the elector's own messages (:meth:`post`, composed beside the
    ingest controller's): a term starts the watchers, its end stops them and drops whatever they
    still hand over. The cache is kept across terms: a leader that comes back knows the objects
    it knew (and lists again anyway).
    """

    def __init__(
        self,
        loop: asyncio.AbstractEventLoop,
        api: KubeApi,
        clock: Clock,
        settings: EnrichSettings,
        *,
        spawn: Callable[[str, Callable[[], None]], Thread] = _spawn_thread,
        health: Probes | None = None,
    ) -> None:
        self._loop = loop
        self._api = api
        self._clock = clock
        self.health = health or Probes()
        self.settings = settings
        self._spawn = spawn
        self.cache = MetadataCache(clock, size=settings.cache_size, grace=settings.grace, allow=settings.labels)
        self.enricher = Enricher(self.cache, clock)
        self._wakeup = asyncio.Event()
        # Set whenever take() applied something: an event waiting for its object looks again.
        self._applied = asyncio.Event()
        # Resources whose watch did not catch up within HOLD: their events are not held until then.
        self._late_until: dict[str, float] = {}
        self.batches: Batches[MetaItem] = Batches(settings.queue, self._wake)
        self.watchers: list[MetadataWatcher] = []
        self._threads: list[Thread] = []
        self.generation = 0
        self.term = 0
        self.leading = False
        self.stopping = False
        self.status: dict[str, tuple[bool, str]] = {}

    def _wake(self) -> None:
        self._loop.call_soon_threadsafe(self._wakeup.set)

    def post(self, message: object) -> None:
        """Any thread: the elector's message, handled on the loop."""
        self._loop.call_soon_threadsafe(self.handle, message)

    def handle(self, message: object) -> None:
        if self.stopping:
            return
        if isinstance(message, Started):
            self.term, self.leading = message.term, True
            self._start()
        elif isinstance(message, LeaderStopped) and message.term == self.term and self.leading:
            self.leading = False
            self._stop_watchers()

    def _start(self) -> None:
        self._stop_watchers()
        for resource in self.settings.resources:
            watcher = MetadataWatcher(
                self._api,
                self.batches,
                self._clock,
                resource,
                generation=self.generation,
                page_size=self.settings.page_size,
            )
            self.watchers.append(watcher)
            self.status[resource.name] = (False, "listing")
            self._threads.append(self._spawn(f"k8s-meta-{resource.name}", watcher.run))
        self._report()

    def _stop_watchers(self) -> None:
        self.generation += 1
        for watcher in self.watchers:
            watcher.stop()
        self.watchers = []
        self._threads = [t for t in self._threads if t.is_alive()]
        self.status = {}
        self.health.readiness.drop("enrich")
        for resource in self.settings.resources:
            metrics.ENRICH_WATCH_UP.labels(resource=resource.name).set(0)

    def _report(self) -> None:
        """One /readyz check naming what cannot be watched. It never fails readiness: events still flow,
        and every other resource still enriches; the detail, the metric and the log line say what is missing."""
        if not self.leading:
            return
        refused = [f"{name} ({detail})" for name, (ok, detail) in sorted(self.status.items()) if not ok]
        watching = sum(1 for ok, _ in self.status.values() if ok)
        detail = f"watching {watching} of {len(self.status)}"
        if refused:
            detail += "; not watched: " + ", ".join(refused)
        self.health.readiness.set("enrich", True, detail[:1000])
        metrics.ENRICH_CACHE_OBJECTS.set(len(self.cache))

    def take(self) -> int:
        """Apply what the watchers handed over (current generation only); returns the items applied."""
        applied = 0
        changed = False
        for item in self.batches.take():
            if item.generation != self.generation or not self.leading:
                continue
            if item.kind == "status":
                name = item.resource.name
                self.cache.reached(item.resource, item.resource_version)
                if self.status.get(name) != (item.ok, item.detail):
                    self.status[name] = (item.ok, item.detail)
                    metrics.ENRICH_WATCH_UP.labels(resource=name).set(1 if item.ok else 0)
                    changed = True
                continue
            self.cache.apply(item)
            applied += 1
        if changed or applied:
            self._report()
            self._applied.set()
        return applied

    async def enrich(self, event: dict[str, Any]) -> dict[str, Any]:
        """:attr:`enricher` on ``event``, after waiting (at most :data:`HOLD` seconds) for its object
        when the cache has provably not caught up with it yet (:meth:`MetadataCache.behind`)."""
        if self.cache.context(event) is None:
            await self._catch_up(event)
        return self.enricher(event)

    async def _catch_up(self, event: dict[str, Any]) -> None:
        resource = self.cache.behind(event)
        if resource is None or not self.leading:
            return
        name = resource.name
        now = self._loop.time()
        if self.status.get(name, (False, ""))[0] is not True or self._late_until.get(name, 0.0) > now:
            return  # its watch is down or lagging: holding events would only slow ingest down
        deadline = now + HOLD
        while self.cache.behind(event) is not None:
            left = deadline - self._loop.time()
            if left <= 0:
                self._late_until[name] = self._loop.time() + LATE_FOR
                metrics.ENRICH_HELD_TIMEOUTS.labels(resource=name).inc()
                return
            self._applied.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._applied.wait(), left)

    async def run(self) -> None:
        while True:
            await self._wakeup.wait()
            self._wakeup.clear()
            try:
                self.take()
            except Exception as exc:  # noqa: BLE001 - one bad item must not end enrichment for good
                logs.error(log, "enrich_apply_failed", exc_info=True, error=repr(exc)[:300])

    async def stop(self, deadline: float) -> None:
        self.stopping = True
        threads = list(self._threads)
        self._stop_watchers()
        for thread in threads:
            remaining = deadline - self._clock.monotonic()
            if remaining > 0:
                await asyncio.to_thread(thread.join, remaining)
