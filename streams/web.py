"""Web views on the Faust web server: count tables as JSON, /healthz, /readyz and /metrics.

Count tables are partitioned across workers. A view asks every worker that holds partitions of the
table (Faust's assignor knows them) for its local share and merges the answers, so any worker can
be asked and the answer covers the whole table; ``?scope=local`` answers from this worker only.
"""

from __future__ import annotations

import asyncio
import heapq
import logging
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import aiohttp
from faust import web
from faust.sensors.prometheus import setup_prometheus_sensors
from faust.types import TP

from streams import logs
from streams.application import app, settings
from streams.explorer.web import install as install_explorer
from streams.health import READINESS
from streams.metrics import REGISTRY
from streams.search import SearchClient
from streams.tables.counts import WINDOWS, by_kind, by_reason, split_kind_key, split_reason_key
from streams.topics import by_kind_topic, by_namespace_topic

log = logging.getLogger("streams.web")

MAX_TOP = 1000

# Faust's own sensor (messages, commits, table ops, rebalances) in our registry, served at /metrics.
setup_prometheus_sensors(app, pattern="/metrics", registry=REGISTRY, name_prefix="k8sev_faust")


class BadRequest(ValueError):
    pass


def _window(request: web.Request) -> tuple[str, int]:
    label = request.query.get("window", "1m")
    if label not in WINDOWS:
        raise BadRequest(f"window must be one of {', '.join(WINDOWS)}")
    ago = request.query.get("ago", "0")
    if not ago.isdigit() or int(ago) > 10_000:
        raise BadRequest("ago must be a whole number of windows back, 0 for the current one")
    return label, int(ago)


def _top(request: web.Request) -> int:
    top = request.query.get("top", "10")
    if not top.isdigit() or not 0 < int(top) <= MAX_TOP:
        raise BadRequest(f"top must be between 1 and {MAX_TOP}")
    return int(top)


def _window_range(label: str, ago: int, now: float | None = None) -> tuple[float, float]:
    size = WINDOWS[label][0].total_seconds()
    start = ((now if now is not None else time.time()) // size - ago) * size
    return start, start + size


def _owned(topic: str) -> Callable[[str], bool]:
    """Whether this worker actively owns the partition a grouping key hashes to in ``topic``.

    The local store also holds standby copies of other workers' partitions (and, with the
    in-memory store, what this worker owned before a rebalance): counting those would count
    twice when the views of all workers are merged.
    """
    actives = app.assignor.assigned_actives()
    cache: dict[str, bool] = {}

    def owned(group: str) -> bool:
        if group not in cache:
            tp = app.producer.key_partition(topic, group.encode())
            cache[group] = TP(topic, tp.partition) in actives
        return cache[group]

    return owned


def _local_counts(
    table: Any, start: float, owned: Callable[[str], bool], group_of: Callable[[str], str]
) -> dict[str, int]:
    """This worker's counts for the window starting at ``start``, from the partitions it owns."""
    out: dict[str, int] = {}
    for key, value in list(table.table.data.items()):
        name, (window_start, _) = key
        if abs(window_start - start) < 1e-3 and value and owned(group_of(name)):
            out[name] = out.get(name, 0) + int(value)
    return out


async def _gather(
    request: web.Request, table: Any, start: float, topic: str, group_of: Callable[[str], str]
) -> tuple[dict[str, int], list[str]]:
    """Counts of the whole table: ours plus every other owning worker's local share."""
    mine = _local_counts(table, start, _owned(topic), group_of)
    if request.query.get("scope") == "local":
        return mine, []
    own_url = str(app.conf.canonical_url).rstrip("/")
    peers = sorted({str(url).rstrip("/") for url in app.assignor.tables_metadata()} - {own_url})
    if not peers:
        return mine, []
    merged = Counter(mine)
    failed: list[str] = []
    query = {**request.query, "scope": "local", "top": str(MAX_TOP)}
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=5)) as session:

        async def ask(peer: str) -> None:
            try:
                async with session.get(f"{peer}{request.path}", params={**query, "raw": "1"}) as resp:
                    resp.raise_for_status()
                    merged.update((await resp.json())["counts"])
            except (aiohttp.ClientError, TimeoutError, KeyError) as exc:
                failed.append(peer)
                logs.warning(log, "peer_query_failed", peer=peer, error=str(exc)[:200])

        await asyncio.gather(*(ask(p) for p in peers))
    return dict(merged), failed


def _iso(stamp: float) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(stamp))


@dataclass(frozen=True)
class WindowQuery:
    label: str
    start: float
    end: float
    top: int

    def body(self, filters: dict[str, str | None], selected: dict[str, int], failed: list[str]) -> dict[str, Any]:
        return {
            "window": self.label,
            "start": _iso(self.start),
            "end": _iso(self.end),
            "filters": filters,
            "total": sum(selected.values()),
            "partial": failed,
        }


def _query(request: web.Request) -> WindowQuery:
    label, ago = _window(request)
    top = _top(request)
    start, end = _window_range(label, ago)
    return WindowQuery(label, start, end, top)


@app.page("/counts/reasons/")
async def reasons_view(self: web.View, request: web.Request) -> web.Response:
    """Top reasons and namespaces in one window; ``namespace`` and ``type`` filter."""
    try:
        query = _query(request)
    except BadRequest as exc:
        return self.json({"error": str(exc)}, status=400)
    counts, failed = await _gather(
        request,
        by_reason[query.label],
        query.start,
        by_namespace_topic.get_topic_name(),
        lambda k: split_reason_key(k)[0],
    )
    namespace, event_type = request.query.get("namespace"), request.query.get("type")
    selected = {}
    for key, value in counts.items():
        ns, typ, _ = split_reason_key(key)
        if (namespace is None or ns == namespace) and (event_type is None or typ == event_type):
            selected[key] = value
    if request.query.get("raw"):
        return self.json({"counts": selected})
    reasons: Counter[tuple[str, str]] = Counter()
    namespaces: Counter[str] = Counter()
    for key, value in selected.items():
        ns, typ, reason = split_reason_key(key)
        reasons[(typ, reason)] += value
        namespaces[ns] += value
    body = query.body({"namespace": namespace, "type": event_type}, selected, failed)
    body["reasons"] = [{"type": t, "reason": r, "count": c} for (t, r), c in _most(reasons, query.top)]
    body["namespaces"] = [{"namespace": ns, "count": c} for ns, c in _most(namespaces, query.top)]
    return self.json(body)


@app.page("/counts/kinds/")
async def kinds_view(self: web.View, request: web.Request) -> web.Response:
    """Top (involved kind, reason) pairs in one window; ``kind`` filters."""
    try:
        query = _query(request)
    except BadRequest as exc:
        return self.json({"error": str(exc)}, status=400)
    counts, failed = await _gather(
        request, by_kind[query.label], query.start, by_kind_topic.get_topic_name(), lambda k: split_kind_key(k)[0]
    )
    kind = request.query.get("kind")
    selected = {k: v for k, v in counts.items() if kind is None or split_kind_key(k)[0] == kind}
    if request.query.get("raw"):
        return self.json({"counts": selected})
    pairs = Counter({split_kind_key(k): v for k, v in selected.items()})
    body = query.body({"kind": kind}, selected, failed)
    body["kinds"] = [{"kind": k, "reason": r, "count": c} for (k, r), c in _most(pairs, query.top)]
    return self.json(body)


def _most(counter: Counter[Any], top: int) -> list[tuple[Any, int]]:
    # Ties broken by name so the answer is stable between calls.
    return heapq.nsmallest(top, counter.items(), key=lambda kv: (-kv[1], kv[0]))


@app.page("/healthz")
async def healthz(self: web.View, request: web.Request) -> web.Response:
    """Liveness: the worker's event loop answers and no agent has crashed."""
    crashed = [a.name for a in app.agents.values() if getattr(a, "crash_reason", None)]
    if crashed:
        return self.json({"ok": False, "crashed_agents": crashed}, status=500)
    return self.json({"ok": True})


@app.page("/readyz")
async def readyz(self: web.View, request: web.Request) -> web.Response:
    """Readiness: every part this worker runs can do its job now (watch, Kafka, search engine)."""
    ready, checks = READINESS.report()
    return self.json({"ok": ready, "checks": checks}, status=200 if ready else 503)


READINESS.set("kafka", False, "not probed yet")
READINESS.set("search", False, "not probed yet")
_search: SearchClient | None = None


PROBE_INTERVAL = 5.0


@app.task
async def probe_peers() -> None:
    """Keep the Kafka and search-engine checks of /readyz current, from start-up on."""
    while not app.should_stop:
        await asyncio.gather(probe_kafka(), probe_search())
        await asyncio.sleep(PROBE_INTERVAL)


async def probe_search() -> None:
    """Search engine reachability, also while no batch is flowing."""
    global _search
    if _search is None:
        _search = SearchClient(settings)
    try:
        ok = await asyncio.wait_for(_search.healthy(), timeout=8)
    except Exception as exc:  # noqa: BLE001 - any failure means "not reachable"
        READINESS.set("search", False, f"{type(exc).__name__}: {str(exc)[:200]}")
        return
    READINESS.set("search", ok, settings.search_engine if ok else "cluster health red")


async def probe_kafka() -> None:
    """Kafka reachability: a metadata round trip through the worker's own producer."""
    try:
        producer = app.producer._ensure_producer()
        await asyncio.wait_for(producer.client.fetch_all_metadata(), timeout=5)
    except Exception as exc:  # noqa: BLE001 - any failure means "not reachable"
        READINESS.set("kafka", False, f"{type(exc).__name__}: {str(exc)[:200]}")
        return
    READINESS.set("kafka", True, ",".join(settings.brokers))


install_explorer(app, settings)
