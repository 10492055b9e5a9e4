"""Web views on the Faust web server: count tables as JSON, /healthz, /readyz and /metrics.

Count tables are partitioned across workers. A view asks every worker that holds partitions of the
table (Faust's assignor knows them) for its local share and merges the answers, so any worker can
be asked and the answer covers the whole table; ``?scope=local`` answers from this worker only.
"""

from __future__ import annotations

import asyncio
import logging
from collections import Counter
from collections.abc import Callable
from typing import cast

import aiohttp
import aiohttp.web
import faust
from faust import web
from faust.types import TP
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from streams.config.settings import Settings
from streams.core import faust_compat, logs, metrics
from streams.core.health import Probes
from streams.core.metrics import REGISTRY
from streams.core.topics import Topics
from streams.counts import views
from streams.ops.monitor import RebalanceMonitor, faust_metrics
from streams.search.client import SearchClient
from streams.tables.counts import CountTables

log = logging.getLogger(__name__)


def _owned(app: faust.App, topic: str) -> Callable[[int], bool]:
    """Whether this worker actively owns partition ``p`` of ``topic`` (the count tables' source).

    The local store also holds standby copies of other workers' partitions (and, with the
    in-memory store, what this worker owned before a rebalance): counting those would count
    twice when the views of all workers are merged.
    """
    actives = app.assignor.assigned_actives()
    return lambda partition: TP(topic, partition) in actives


async def _gather(
    app: faust.App, request: web.Request, mine: dict[str, int], token: str | None
) -> tuple[dict[str, int], list[str]]:
    """Counts of the whole table: ``mine`` (this worker's share) plus every other owning worker's.

    ``token``: the caller's Kubernetes token, sent along so each peer admits and filters by it itself.
    """
    if request.query.get("scope") == "local":
        return mine, []
    own_url = str(app.conf.canonical_url).rstrip("/")
    peers = sorted({str(url).rstrip("/") for url in app.assignor.tables_metadata()} - {own_url})
    if not peers:
        return mine, []
    merged = Counter(mine)
    failed: list[str] = []
    query = {**request.query, "scope": "local", "top": str(views.MAX_TOP)}
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=5), headers=headers) as session:

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


PROBE_INTERVAL = 5.0


def install(
    app: faust.App,
    settings: Settings,
    topics: Topics,
    tables: CountTables | None,
    health: Probes,
    search: SearchClient,
    guard: views.Guard | None = None,
) -> None:
    """Register the count views, the probes behind /readyz and /healthz (``health``'s checks) and /metrics.

    ``guard``: the explorer's Kubernetes gate (``K8SEV_EXPLORER_AUTH=kubernetes``); the count views then
    answer only with a token, and only the namespaces it may list events in. The probes and /metrics
    stay open for the kubelet and Prometheus.
    """
    # Faust's own sensor (rebalances, assignments, commits, send errors) in our registry, at /metrics.
    app.monitor = RebalanceMonitor(metrics=faust_metrics(REGISTRY, "k8sev_faust"))
    readiness, liveness = health.readiness, health.liveness
    # The process's /metrics serves one worker's readiness: this one's.
    metrics.READINESS_METRICS.report = readiness.report
    readiness.set("kafka", False, "not probed yet")
    readiness.set("search", False, "not probed yet")

    async def counts(view: web.View, request: web.Request, family: str, answer: views.Answer) -> web.Response:
        """``answer`` over the whole table's counts for the asked window, or the error answer."""
        if tables is None:
            return view.json({"error": views.NO_COUNTS.format(role=settings.stages.role)}, status=404)
        try:
            query = views.query(request.query)
        except views.BadRequest as exc:
            return view.json({"error": str(exc)}, status=400)
        table = (tables.by_reason if family == "reason" else tables.by_kind)[query.label]
        entries = list(table.table.data.items())
        mine = views.local_counts(entries, query.start, _owned(app, topics.raw.get_topic_name()))
        admitted = views.Admission()
        if guard is not None:
            present = views.namespaces(mine) if family == "reason" else ()
            admitted = await guard(request.headers, family, request.query.get("namespace"), present)
            if admitted.refusal is not None:
                no = admitted.refusal
                return view.bytes(no.body, content_type=no.content_type, status=no.status, headers=no.headers)
            # Kept to the caller's namespaces before anything is merged or sent.
            mine = views.within(mine, family, admitted.allowed)
        found, failed = await _gather(app, request, mine, admitted.token)
        body = answer(query, request.query, found, failed)
        if admitted.note and not request.query.get("raw"):
            body["notice"] = admitted.note
        return view.json(body)

    @app.page("/counts/reasons/")
    async def reasons_view(self: web.View, request: web.Request) -> web.Response:
        """Top reasons and namespaces in one window (:func:`streams.counts.views.reasons`)."""
        return await counts(self, request, "reason", views.reasons)

    @app.page("/counts/kinds/")
    async def kinds_view(self: web.View, request: web.Request) -> web.Response:
        """Top (involved kind, reason) pairs in one window (:func:`streams.counts.views.kinds`)."""
        return await counts(self, request, "kind", views.kinds)

    @app.page("/metrics")
    async def metrics_view(self: web.View, request: web.Request) -> web.Response:
        """Prometheus: ``k8sev_*`` and Faust's own ``k8sev_faust_*``."""
        return cast(
            web.Response,
            aiohttp.web.Response(body=generate_latest(REGISTRY), headers={"Content-Type": CONTENT_TYPE_LATEST}),
        )

    @app.page("/healthz")
    async def healthz(self: web.View, request: web.Request) -> web.Response:
        """Liveness: the loop beats, every agent runs (or was restarted in time), every thread is alive.

        Reads only what the parts recorded (its liveness registry): never waits on Kafka or the engine.
        """
        alive, checks = liveness.report()
        return self.json({"ok": alive, "checks": checks}, status=200 if alive else 500)

    @app.page("/readyz")
    async def readyz(self: web.View, request: web.Request) -> web.Response:
        """Readiness: every part this worker runs can do its job now (watch, Kafka, search engine)."""
        ready, checks = readiness.report()
        return self.json({"ok": ready, "checks": checks}, status=200 if ready else 503)

    @app.task
    async def probe_peers() -> None:
        """Keep the Kafka and search-engine checks of /readyz current, from start-up on."""
        while not app.should_stop:
            await asyncio.gather(probe_kafka(), probe_search())
            await asyncio.sleep(PROBE_INTERVAL)

    async def probe_search() -> None:
        """Search engine reachability, also while no batch is flowing."""
        try:
            ok = await asyncio.wait_for(search.healthy(), timeout=8)
        except Exception as exc:  # noqa: BLE001 - any failure means "not reachable"
            readiness.set("search", False, f"{type(exc).__name__}: {str(exc)[:200]}")
            return
        readiness.set("search", ok, settings.search.engine if ok else "cluster health red")

    async def probe_kafka() -> None:
        """Kafka reachability: a metadata round trip through the worker's own producer."""
        try:
            producer = faust_compat.kafka_producer(app.producer)
            await asyncio.wait_for(producer.client.fetch_all_metadata(), timeout=5)
        except Exception as exc:  # noqa: BLE001 - any failure means "not reachable"
            readiness.set("kafka", False, f"{type(exc).__name__}: {str(exc)[:200]}")
            return
        readiness.set("kafka", True, ",".join(settings.kafka.brokers))
