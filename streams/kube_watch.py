"""LIST then WATCH core/v1 Events with the blocking ``kubernetes`` client, in a thread.

The thread hands each item to the event loop through a bounded asyncio queue and blocks while the
queue is full, so a slow Kafka slows the watch instead of filling memory. Items are raw dicts
(the response bytes parsed with ``json``), never client models: model building costs more than
the whole rest of the path and would reshape the document.

One :class:`EventWatcher` covers one scope: all namespaces, or one namespace.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import threading
import time
from collections.abc import Iterator
from concurrent.futures import TimeoutError as FutureTimeout
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, Literal

import urllib3
from kubernetes import client, config
from kubernetes.client.exceptions import ApiException
from kubernetes.watch.watch import iter_resp_lines

from streams import logs, metrics
from streams.health import READINESS

log = logging.getLogger(__name__)

HTTP_GONE = 410


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


class Gone(Exception):
    """The resourceVersion fell out of the API server's watch window (410): list again."""


class WatchStopped(Exception):
    """The watcher was asked to stop."""


def api_client(kubeconfig: Path | None) -> client.ApiClient:
    """An ApiClient from a kubeconfig file, in-cluster credentials, or ``~/.kube/config``."""
    if kubeconfig is not None:
        return config.new_client_from_config(config_file=str(kubeconfig))
    if os.environ.get("KUBERNETES_SERVICE_HOST"):
        configuration = client.Configuration()
        config.load_incluster_config(client_configuration=configuration)
        return client.ApiClient(configuration)
    return config.new_client_from_config()


class EventWatcher:
    """Runs LIST+WATCH in a thread (:meth:`run`), feeding ``queue`` on ``loop``."""

    def __init__(
        self,
        api: client.CoreV1Api,
        queue: asyncio.Queue[tuple[int, str, WatchItem]],
        loop: asyncio.AbstractEventLoop,
        *,
        namespace: str | None = None,
        page_size: int = 500,
        watch_timeout: float = 300.0,
        idle_timeout: float = 150.0,
        resource_version: str | None = None,
        resumed_at: datetime | None = None,
        event_ttl: float = 3600.0,
        tag: int = 0,
    ) -> None:
        self._api = api
        self._queue = queue
        self._loop = loop
        self._namespace = namespace
        self._page_size = page_size
        self._watch_timeout = watch_timeout
        self._idle_timeout = idle_timeout
        self._resource_version = resource_version
        # When the watch last made progress: a 410 after a long pause may mean events expired unseen.
        self._progress_at = resumed_at or datetime.now(UTC)
        self._event_ttl = event_ttl
        self._tag = tag
        self._stop = threading.Event()
        self._response: Any = None
        self._lock = threading.Lock()

    @property
    def scope(self) -> str:
        return self._namespace or "*"

    def stop(self) -> None:
        """Ask the thread to end; unblocks a read in progress by closing its connection."""
        self._stop.set()
        with self._lock:
            response = self._response
        if response is not None:
            with contextlib.suppress(Exception):
                response.shutdown()
            with contextlib.suppress(Exception):
                response.close()

    def run(self) -> None:
        backoff = 1.0
        while not self._stop.is_set():
            try:
                if self._resource_version is None:
                    self._resource_version = self._list()
                self._watch(self._resource_version)
                backoff = 1.0
            except WatchStopped:
                break
            except Gone:
                logs.warning(log, "watch_expired", scope=self.scope, resource_version=self._resource_version)
                metrics.WATCH_RESTARTS.labels(cause="gone").inc()
                self._report_gap()
                self._resource_version = None
            except Exception as exc:  # noqa: BLE001 - any failure: back off and resume from the checkpoint
                if self._stop.is_set():
                    break
                metrics.WATCH_UP.set(0)
                cause = _cause(exc)
                READINESS.set(f"watch[{self.scope}]", False, f"{cause}: {_short(exc)}")
                metrics.WATCH_RESTARTS.labels(cause=cause).inc()
                logs.warning(log, "watch_failed", scope=self.scope, cause=cause, error=_short(exc), retry_in=backoff)
                if self._stop.wait(backoff):
                    break
                backoff = min(backoff * 2, 30.0)
        metrics.WATCH_UP.set(0)
        READINESS.set(f"watch[{self.scope}]", False, "stopped")
        logs.info(log, "watch_stopped", scope=self.scope, resource_version=self._resource_version)

    def _report_gap(self) -> None:
        """Events that happened after the last progress but expired (TTL) before this relist are gone.

        Which ones cannot be known; that it may have happened, and when, can.
        """
        now = datetime.now(UTC)
        lost_until = now - timedelta(seconds=self._event_ttl)
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

    def _call(self, **kwargs: Any) -> Any:
        kwargs.setdefault("_preload_content", False)
        if self._namespace:
            return self._api.list_namespaced_event(self._namespace, **kwargs)
        return self._api.list_event_for_all_namespaces(**kwargs)

    def _list(self) -> str:
        """A paginated LIST; every item is handed on; returns the list's resourceVersion."""
        metrics.WATCH_RELISTS.inc()
        started = time.monotonic()
        token: str | None = None
        total = 0
        while True:
            self._check_stop()
            kwargs: dict[str, Any] = {"limit": self._page_size, "_request_timeout": (10, 60)}
            if token:
                kwargs["_continue"] = token
            try:
                response = self._call(**kwargs)
                body = json.loads(response.data)
            except ApiException as exc:
                if exc.status == HTTP_GONE and token:
                    # The continue token expired mid-list: start the LIST over.
                    logs.warning(log, "list_continue_expired", scope=self.scope, listed=total)
                    token = None
                    continue
                raise
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
        self._progress_at = datetime.now(UTC)
        logs.info(
            log,
            "list_done",
            scope=self.scope,
            events=total,
            resource_version=resource_version,
            seconds=round(time.monotonic() - started, 3),
        )
        return resource_version

    def _watch(self, resource_version: str) -> None:
        response = self._call(
            watch=True,
            resource_version=resource_version,
            allow_watch_bookmarks=True,
            timeout_seconds=int(self._watch_timeout),
            # The read timeout bounds silence. A quiet scope may get nothing, not even a bookmark,
            # until the server ends the WATCH; the idle timeout is longer than that, so a longer
            # silence means a dead connection.
            _request_timeout=(10, self._idle_timeout),
        )
        with self._lock:
            self._response = response
        metrics.WATCH_UP.set(1)
        READINESS.set(f"watch[{self.scope}]", True, "streaming")
        logs.info(log, "watch_started", scope=self.scope, resource_version=resource_version)
        try:
            for line in _lines(response):
                self._check_stop()
                self._handle(json.loads(line))
        except urllib3.exceptions.ProtocolError:
            self._check_stop()
            raise
        finally:
            with self._lock:
                self._response = None
            with contextlib.suppress(Exception):
                response.release_conn()
        self._check_stop()
        # The server ends every WATCH after timeout_seconds; resume from where it got to.
        metrics.WATCH_RESTARTS.labels(cause="timeout").inc()

    def _handle(self, notification: dict[str, Any]) -> None:
        kind = notification.get("type")
        obj = notification.get("object") or {}
        if kind == "ERROR":
            if obj.get("code") == HTTP_GONE:
                raise Gone(obj.get("message", ""))
            raise ApiException(status=obj.get("code"), reason=f"{obj.get('reason')}: {obj.get('message')}")
        resource_version = _rv(obj)
        self._progress_at = datetime.now(UTC)
        if kind == "BOOKMARK":
            self._resource_version = resource_version or self._resource_version
            self._put(WatchItem("bookmark", self._resource_version or ""))
            return
        if kind == "DELETED":
            # etcd's TTL removing an event: not an occurrence, nothing new to keep.
            metrics.WATCH_DELETIONS.inc()
            self._resource_version = resource_version or self._resource_version
            return
        if kind in ("ADDED", "MODIFIED"):
            self._put(WatchItem("added" if kind == "ADDED" else "modified", resource_version, obj))
            self._resource_version = resource_version or self._resource_version
            return
        logs.warning(log, "watch_unknown_type", scope=self.scope, type=kind)

    def _put(self, item: WatchItem) -> None:
        """Hand ``item`` to the loop; block (back-pressure) while the queue is full."""
        future = asyncio.run_coroutine_threadsafe(self._queue.put((self._tag, self.scope, item)), self._loop)
        while True:
            try:
                future.result(timeout=0.5)
                return
            except FutureTimeout:
                if self._stop.is_set():
                    future.cancel()
                    raise WatchStopped from None

    def _check_stop(self) -> None:
        if self._stop.is_set():
            raise WatchStopped


def _lines(response: Any) -> Iterator[str]:
    for line in iter_resp_lines(response):
        if line and not line.isspace():
            yield line


def _rv(obj: dict[str, Any]) -> str:
    meta = obj.get("metadata")
    value = meta.get("resourceVersion") if isinstance(meta, dict) else None
    return value if isinstance(value, str) else ""


def _cause(exc: Exception) -> str:
    if isinstance(exc, urllib3.exceptions.ReadTimeoutError):
        return "idle"
    if isinstance(exc, ApiException):
        return f"http_{exc.status}"
    if isinstance(exc, urllib3.exceptions.HTTPError | OSError):
        return "connection"
    return "error"


def _short(exc: Exception) -> str:
    text = str(exc).strip().splitlines()
    return (text[0] if text else type(exc).__name__)[:300]
