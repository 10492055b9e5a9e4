"""Bulk indexing with the guarantees the sink agent promises.

A batch is done when every document in it was acknowledged by the search engine or, if the engine
refused that document for good (a mapping conflict, or a single document over the engine's request
limit), written to the dead-letter topic. Until then the batch is retried with back-off: nothing is
dropped or doubled, because the offsets move only after :meth:`Indexer.index` returns and every
document has the id ``<uid>:<resourceVersion>``.

A batch holds at most ``K8SEV_BULK_SIZE`` records (the sink agent takes them so), and its requests at
most ``K8SEV_BULK_BYTES`` each; a 413 splits
the request in halves until a single document is refused. Failures of a whole request are told
apart: *transient* ones (unreachable, timeouts, 429, 5xx) and *permanent* ones (401, 403, 404, 400:
credentials, privileges, a missing index or template, a request the engine will never take) are
retried alike, since no document is at fault, but logged, counted and reported to /readyz as such.
When the worker stops, retrying ends (:class:`Abandoned`): the batch is left unacknowledged for the
next owner of its partitions.
"""

from __future__ import annotations

import asyncio
import collections
import json
import logging
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Protocol, TypeVar

from streams.config.settings import Settings
from streams.core import events, logs, metrics
from streams.core.backoff import Backoff
from streams.core.health import Probes
from streams.search.client import SearchClient
from streams.search.template import index_template, template_name

log = logging.getLogger(__name__)
T = TypeVar("T")

RETRY_STATUSES = frozenset({408, 429, 500, 502, 503, 504})
#: Statuses that are the request's (or the cluster's) fault, not one document's, and will not pass by
#: themselves: an item answered so is retried, never dead-lettered, and the request reported permanent.
PERMANENT_STATUSES = frozenset({400, 401, 403, 404})
TOO_LARGE = 413
#: How long an in-flight bulk request may still finish once the worker stops.
STOP_GRACE = 5.0


class Abandoned(Exception):
    """The worker is stopping: the batch was not (entirely) indexed and must not be acknowledged."""


class Indexable(Protocol):
    """What the sink needs of a clean record (:class:`streams.core.records.CleanEvent` has it)."""

    @property
    def uid(self) -> str: ...
    @property
    def resource_version(self) -> str: ...
    @property
    def time(self) -> float: ...
    @property
    def type(self) -> str: ...
    @property
    def namespace(self) -> str: ...
    @property
    def event(self) -> dict[str, Any]: ...


@dataclass(frozen=True, slots=True)
class Rejection:
    """A document the engine refused for good."""

    event: Indexable
    status: int
    error: str
    #: The dead letter's reason; empty: ``http_<status>``.
    reason: str = ""


def operations(batch: Sequence[Indexable], settings: Settings) -> list[dict[str, Any]]:
    """The bulk body: an ``index`` action and the document for each event, in order."""
    ops: list[dict[str, Any]] = []
    for item in batch:
        when = datetime.fromtimestamp(item.time, UTC)
        ops.append(
            {
                "index": {
                    "_index": events.index_name(settings.search.index_prefix, when),
                    "_id": f"{item.uid}:{item.resource_version}",
                }
            }
        )
        ops.append(events.to_document(item.event, settings.kube.cluster, when))
    return ops


@dataclass(frozen=True, slots=True)
class Encoded:
    """One document's two lines of the bulk body, serialized once (for the byte cap and the request)."""

    item: Indexable
    lines: bytes


def encode(batch: Sequence[Indexable], settings: Settings) -> tuple[list[Encoded], list[Rejection]]:
    """Each event's action and document as NDJSON lines; records that cannot become one, refused.

    The clean topic is written by dedup, but not only: a record there with fields of the wrong
    type must cost its own dead letter, never the sink agent.
    """
    encoded: list[Encoded] = []
    broken: list[Rejection] = []
    for item in batch:
        try:
            action, document = operations([item], settings)
            encoded.append(Encoded(item, events.encode_json(action) + b"\n" + events.encode_json(document) + b"\n"))
        except Exception as exc:  # noqa: BLE001 - one record's fault: its dead letter
            broken.append(Rejection(item, 0, f"{type(exc).__name__}: {exc}", reason="internal_error"))
    return encoded, broken


def split_by_bytes(encoded: Sequence[Encoded], max_bytes: int) -> list[list[Encoded]]:
    """Consecutive requests of at most ``max_bytes`` each (a document larger than that goes alone)."""
    requests: list[list[Encoded]] = []
    current: list[Encoded] = []
    size = 0
    for one in encoded:
        if current and size + len(one.lines) > max_bytes:
            requests.append(current)
            current, size = [], 0
        current.append(one)
        size += len(one.lines)
    if current:
        requests.append(current)
    return requests


def request_status(exc: BaseException) -> int | None:
    """The HTTP status of a failed request, if the engine answered one."""
    meta = getattr(exc, "meta", None)
    status = getattr(meta, "status", None) or getattr(exc, "status_code", None) or getattr(exc, "status", None)
    return status if isinstance(status, int) else None


def item_status(response: dict[str, Any], position: int) -> int:
    """The status the engine gave the item at ``position`` of a bulk response (0: none)."""
    try:
        result = next(iter(response["items"][position].values()))
        return int(result.get("status", 0))
    except (KeyError, IndexError, TypeError, ValueError, AttributeError, StopIteration):
        return 0


def classify(response: dict[str, Any], count: int) -> tuple[list[int], list[tuple[int, int, str]]]:
    """Positions to retry, and (position, status, error) of documents refused for good.

    A bulk response lists one item per action, in the order sent. Items answered with a
    :data:`PERMANENT_STATUSES` status other than 400 (a missing index, no privilege) are retried:
    it is not the document's fault.
    """
    items = response.get("items") or []
    if len(items) != count:
        # Can't tell which succeeded: retry them all (same ids, so nothing doubles).
        return list(range(count)), []
    retry: list[int] = []
    refused: list[tuple[int, int, str]] = []
    for position, item in enumerate(items):
        result: dict[str, Any] = next(iter(item.values()), {}) if isinstance(item, dict) else {}
        status = int(result.get("status", 0))
        if 200 <= status < 300:
            continue
        if status in RETRY_STATUSES or status == 0 or (status in PERMANENT_STATUSES and status != 400):
            retry.append(position)
        else:
            refused.append((position, status, json.dumps(result.get("error"), ensure_ascii=False)[:2000]))
    return retry, refused


class Indexer:
    """Indexes batches of clean events; ``dead_letter`` is awaited for each refused document.

    ``stopping`` is set when the worker stops: requests that succeed go on (the streams drain), but a
    request gets at most :data:`STOP_GRACE` and a failure raises :class:`Abandoned` rather than
    waiting to try again.
    """

    def __init__(
        self,
        settings: Settings,
        client: SearchClient,
        dead_letter: Callable[[Rejection], Awaitable[None]],
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
        stopping: asyncio.Event | None = None,
        clock: Callable[[], float] = time.monotonic,
        health: Probes | None = None,
    ) -> None:
        self._settings = settings
        self.health = health or Probes()
        self._client = client
        self._dead_letter = dead_letter
        self._sleep = sleep
        self._stopping = stopping or asyncio.Event()
        self._clock = clock
        self._template_installed = False
        self._failing_since: float | None = None

    async def ensure_template(self) -> None:
        """Install the index template, retrying until the engine takes it."""
        backoff = Backoff()
        while not self._template_installed:
            try:
                await self._attempt(
                    self._client.put_index_template(template_name(self._settings), index_template(self._settings))
                )
            except Abandoned:
                raise
            except Exception as exc:  # noqa: BLE001 - unreachable or refusing: wait and try again
                self._failed("put_index_template", exc)
                await self._pause(backoff.next())
                continue
            self._template_installed = True
            self._succeeded()
            logs.info(log, "index_template_installed", name=template_name(self._settings), engine=self._client.engine)

    async def index(self, batch: Sequence[Indexable]) -> None:
        """Index ``batch``; returns once every document was indexed or dead-lettered, raises
        :class:`Abandoned` when the worker stops first."""
        await self.ensure_template()
        encoded, broken = encode(batch, self._settings)
        for rejection in broken:
            await self._dead_letter(rejection)
            metrics.EVENTS_REJECTED.labels(stage="sink", reason=rejection.reason).inc()
        for request in split_by_bytes(encoded, self._settings.stages.bulk_bytes):
            await self._index_request(request)

    async def _index_request(self, request: list[Encoded]) -> None:
        pending = request
        backoff = Backoff()
        while pending:
            # While the worker stops, requests go on as long as they succeed (the streams drain);
            # the first failure, or a request slower than STOP_GRACE, abandons the batch.
            started = time.perf_counter()
            try:
                response = await self._attempt(self._client.bulk(b"".join(one.lines for one in pending)))
            except Abandoned:
                raise
            except Exception as exc:  # noqa: BLE001 - the batch stays pending; offsets do not move
                if request_status(exc) == TOO_LARGE:
                    await self._split(pending, exc)
                    return
                self._failed("bulk", exc)
                metrics.BULK_RETRIES.labels(cause=_cause(exc)).inc()
                await self._pause(backoff.next())
                continue
            metrics.BULK_DURATION.observe(time.perf_counter() - started)
            retry, refused = classify(response, len(pending))
            for position, status, error in refused:
                await self._refuse(pending[position].item, status, error)
            _count_indexed([one.item for one in pending], set(retry).union(p for p, _, _ in refused))
            not_ours = sorted({s for s in (item_status(response, p) for p in retry) if s in PERMANENT_STATUSES})
            if not_ours:
                # The engine answered, but refuses documents for a reason none of them can fix.
                self._failing("bulk", f"http_{not_ours[0]}", True, f"items answered {not_ours}")
            else:
                self._succeeded()
            if retry:
                metrics.BULK_RETRIES.labels(cause="item").inc(len(retry))
                logs.warning(log, "bulk_items_retried", count=len(retry), of=len(pending))
                pending = [pending[p] for p in retry]
                await self._pause(backoff.next())
            else:
                pending = []

    async def _split(self, pending: list[Encoded], exc: Exception) -> None:
        """413: the engine's request limit (``http.max_content_length``) is below this request."""
        size = sum(len(one.lines) for one in pending)
        metrics.BULK_FAILURES.labels(cause="http_413", permanent="false").inc()
        if len(pending) == 1:
            logs.warning(log, "bulk_document_too_large", bytes=size)
            await self._refuse(pending[0].item, TOO_LARGE, f"document of {size} bytes over the engine's request limit")
            return
        half = len(pending) // 2
        logs.warning(log, "bulk_request_split", documents=len(pending), bytes=size)
        await self._index_request(pending[:half])
        await self._index_request(pending[half:])

    async def _refuse(self, item: Indexable, status: int, error: str) -> None:
        await self._dead_letter(Rejection(item, status, error))
        metrics.EVENTS_REJECTED.labels(stage="sink", reason=f"http_{status}").inc()

    async def _attempt(self, call: Awaitable[T]) -> T:
        """``call``, unless the worker stops first (then it has :data:`STOP_GRACE` to finish)."""
        task = asyncio.ensure_future(call)
        stop = asyncio.ensure_future(self._stopping.wait())
        try:
            await asyncio.wait({task, stop}, return_when=asyncio.FIRST_COMPLETED)
            if not task.done():
                await asyncio.wait({task}, timeout=STOP_GRACE)
            if not task.done():
                raise Abandoned("request still in flight when the worker stopped")
            return task.result()
        finally:
            for pending in (task, stop):
                if not pending.done():
                    pending.cancel()

    async def _pause(self, delay: float) -> None:
        """Back-off that ends at once when the worker stops."""
        if self._stopping.is_set():
            raise Abandoned("stopping")
        stop = asyncio.ensure_future(self._stopping.wait())
        nap = asyncio.ensure_future(self._sleep(delay))
        try:
            await asyncio.wait({stop, nap}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            stop.cancel()
            nap.cancel()
        if self._stopping.is_set():
            raise Abandoned("stopping")

    def _failed(self, call: str, exc: Exception) -> None:
        self._failing(call, _cause(exc), request_status(exc) in PERMANENT_STATUSES, str(exc))

    def _failing(self, call: str, cause: str, permanent: bool, error: str) -> None:
        metrics.SEARCH_UP.set(0)
        metrics.BULK_FAILURES.labels(cause=cause, permanent=str(permanent).lower()).inc()
        now = self._clock()
        if self._failing_since is None:
            self._failing_since = now
        failing_for = now - self._failing_since
        kind = "permanent" if permanent else "transient"
        detail = f"{call} failing for {failing_for:.0f}s: {cause} ({kind}): {error[:200]}"
        self.health.readiness.set("sink", False, detail, grace=self._settings.stages.sink_unready_after)
        logs.warning(
            log,
            "search_request_refused" if permanent else "search_unavailable",
            call=call,
            cause=cause,
            permanent=permanent,
            failing_for=round(failing_for, 1),
            error=error[:300],
        )

    def _succeeded(self) -> None:
        metrics.SEARCH_UP.set(1)
        self._failing_since = None
        self.health.readiness.set("sink", True, self._client.engine)


def _count_indexed(batch: Sequence[Indexable], not_done: set[int]) -> None:
    """Count the documents of ``batch`` the engine took, one increment per label pair."""
    indexed: collections.Counter[tuple[str, str]] = collections.Counter(
        (item.type, item.namespace) for position, item in enumerate(batch) if position not in not_done
    )
    for (event_type, namespace), count in indexed.items():
        metrics.by_type_and_namespace(metrics.EVENTS_INDEXED, event_type, namespace).inc(count)


def _cause(exc: Exception) -> str:
    """A bounded label: ``http_<status>``, ``timeout``, ``connection`` or ``error``."""
    status = request_status(exc)
    if status is not None and 100 <= status < 600:
        return f"http_{status}"
    name = type(exc).__name__
    if "Timeout" in name:
        return "timeout"
    if "Connection" in name:
        return "connection"
    return "error"
