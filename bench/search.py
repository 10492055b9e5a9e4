"""Elasticsearch for benchmarks: how many documents a search sees, and a wait for a count."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

from devstack import transient, wait
from devstack.worker import Worker


def es_client(stack: dict[str, str]) -> Any:
    from elasticsearch import Elasticsearch

    return Elasticsearch(stack["DEVSTACK_ELASTICSEARCH_URL"], request_timeout=60)


def es_count(es: Any, prefix: str) -> int:
    """Documents searchable under ``<prefix>-*`` (refreshed ones only: what a search sees). Errors
    propagate: a poll passes ``not_yet=transient.search`` to wait out a shard still allocating."""
    found = es.count(index=f"{prefix}-*", allow_no_indices=True, ignore_unavailable=True)
    return int(found["count"])


class CountProbe:
    """``es_count`` for a wait, remembering when documents were first seen and when the last count was read."""

    def __init__(
        self,
        es: Any,
        prefix: str,
        check: Callable[[], None] | None = None,
        on_first: Callable[[int], None] | None = None,
    ) -> None:
        self.es = es
        self.prefix = prefix
        self.check = check
        self.on_first = on_first
        self.first: float | None = None
        self.at = 0.0
        self.count = 0

    def __call__(self) -> int:
        if self.check:
            self.check()
        self.count = es_count(self.es, self.prefix)
        self.at = time.monotonic()
        if self.count and self.first is None:
            self.first = self.at
            if self.on_first:
                self.on_first(self.count)
        return self.count


def wait_count(
    es: Any,
    prefix: str,
    target: int,
    timeout: float,
    interval: float = 0.25,
    check: Callable[[], None] | None = None,
    on_first: Callable[[int], None] | None = None,
) -> tuple[float | None, float | None, int]:
    """Poll until ``target`` documents are searchable: (first seen, all seen) monotonic times, count
    (all seen is None after ``timeout``). ``check`` runs before each poll and may raise to stop;
    ``on_first`` gets the first non-zero count (to start a clock or a profiler there)."""
    probe = CountProbe(es, prefix, check, on_first)
    try:
        wait.until(f"{target} documents searchable under {prefix}-*", probe, timeout=timeout, interval=interval,
                   ready=lambda count: count >= target, not_yet=transient.search)  # fmt: skip
    except wait.WaitTimeout:
        return probe.first, None, probe.count
    return probe.first, probe.at, probe.count


def count_once_consumed(es: Any, worker: Worker) -> int:
    """Documents of ``worker`` once its consumer group has committed the end of its topics (nothing
    more is on its way), the index refreshed: the "nothing extra" figure."""
    worker.wait_consumed()
    prefix = worker.index_prefix

    def count() -> int:
        es.indices.refresh(index=f"{prefix}-*", allow_no_indices=True, ignore_unavailable=True)
        return es_count(es, prefix)

    return wait.until(f"a count of {prefix}-*", count, timeout=60, ready=lambda _: True, not_yet=transient.search)
