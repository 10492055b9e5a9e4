"""Bulk indexing with the guarantees the sink agent promises.

A batch is done when every document in it was acknowledged by the search engine or, if the engine
refused it for good (a mapping conflict), written to the dead-letter topic. Until then the batch
is retried with back-off: connection errors, timeouts, 429 and 5xx never drop or double anything,
because the offsets move only after :meth:`Indexer.index` returns and every document has the id
``<uid>:<resourceVersion>``.
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
from typing import Any, Protocol

from streams import events, logs, metrics
from streams.backoff import Backoff
from streams.health import READINESS
from streams.search import SearchClient, index_template, template_name
from streams.settings import Settings

log = logging.getLogger(__name__)

RETRY_STATUSES = frozenset({408, 429, 500, 502, 503, 504})


class Indexable(Protocol):
    """What the sink needs of a clean record (:class:`streams.records.Indexable` has it)."""

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


def classify(response: dict[str, Any], count: int) -> tuple[list[int], list[tuple[int, int, str]]]:
    """Positions to retry, and (position, status, error) of documents refused for good.

    A bulk response lists one item per action, in the order sent.
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
        if status in RETRY_STATUSES or status == 0:
            retry.append(position)
        else:
            refused.append((position, status, json.dumps(result.get("error"), ensure_ascii=False)[:2000]))
    return retry, refused


class Indexer:
    """Indexes batches of clean events; ``dead_letter`` is awaited for each refused document."""

    def __init__(
        self,
        settings: Settings,
        client: SearchClient,
        dead_letter: Callable[[Rejection], Awaitable[None]],
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
    ) -> None:
        self._settings = settings
        self._client = client
        self._dead_letter = dead_letter
        self._sleep = sleep
        self._template_installed = False

    async def ensure_template(self) -> None:
        """Install the index template, retrying until the engine takes it."""
        backoff = Backoff()
        while not self._template_installed:
            try:
                await self._client.put_index_template(template_name(self._settings), index_template(self._settings))
            except Exception as exc:  # noqa: BLE001 - unreachable or refusing: wait and try again
                self._unreachable("put_index_template", exc)
                await self._sleep(backoff.next())
                continue
            self._template_installed = True
            self._reachable()
            logs.info(log, "index_template_installed", name=template_name(self._settings), engine=self._client.engine)

    async def index(self, batch: Sequence[Indexable]) -> None:
        await self.ensure_template()
        pending = list(batch)
        backoff = Backoff()
        while pending:
            started = time.perf_counter()
            try:
                response = await self._client.bulk(operations(pending, self._settings))
            except Exception as exc:  # noqa: BLE001 - the batch stays pending; offsets do not move
                self._unreachable("bulk", exc)
                metrics.BULK_RETRIES.labels(cause=_cause(exc)).inc()
                await self._sleep(backoff.next())
                continue
            metrics.BULK_DURATION.observe(time.perf_counter() - started)
            self._reachable()
            retry, refused = classify(response, len(pending))
            for position, status, error in refused:
                rejection = Rejection(pending[position], status, error)
                await self._dead_letter(rejection)
                metrics.EVENTS_REJECTED.labels(stage="sink", reason=f"http_{status}").inc()
            _count_indexed(pending, set(retry).union(p for p, _, _ in refused))
            if retry:
                metrics.BULK_RETRIES.labels(cause="item").inc(len(retry))
                logs.warning(log, "bulk_items_retried", count=len(retry), of=len(pending))
                pending = [pending[p] for p in retry]
                await self._sleep(backoff.next())
            else:
                pending = []

    def _unreachable(self, call: str, exc: Exception) -> None:
        metrics.SEARCH_UP.set(0)
        READINESS.set("search", False, f"{call}: {_cause(exc)}")
        logs.warning(log, "search_unavailable", call=call, cause=_cause(exc), error=str(exc)[:300])

    def _reachable(self) -> None:
        metrics.SEARCH_UP.set(1)
        READINESS.set("search", True, self._client.engine)


def _count_indexed(batch: Sequence[Indexable], not_done: set[int]) -> None:
    """Count the documents of ``batch`` the engine took, one increment per label pair."""
    indexed: collections.Counter[tuple[str, str]] = collections.Counter(
        (item.type, item.namespace) for position, item in enumerate(batch) if position not in not_done
    )
    for (event_type, namespace), count in indexed.items():
        metrics.by_type_and_namespace(metrics.EVENTS_INDEXED, event_type, namespace).inc(count)


def _cause(exc: Exception) -> str:
    status = getattr(exc, "status_code", None) or getattr(exc, "status", None)
    if isinstance(status, int):
        return f"http_{status}"
    name = type(exc).__name__
    if "Timeout" in name:
        return "timeout"
    if "Connection" in name:
        return "connection"
    return "error"
