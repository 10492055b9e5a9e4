"""Prometheus metrics of the worker, in one registry served at ``/metrics``.

Names carry units and ``_total`` on counters. Labels are bounded: a namespace label keeps the first
:data:`MAX_NAMESPACE_LABELS` namespaces it sees and folds the rest into ``_other``, so a cluster
with ten thousand namespaces cannot blow up the scrape.
"""

from __future__ import annotations

import re
import threading
from collections.abc import Callable, Iterator, Mapping
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, ProcessCollector
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from streams.core.health import Health

REGISTRY = CollectorRegistry(auto_describe=True)
MAX_NAMESPACE_LABELS = 50
OTHER = "_other"

_LAG_BUCKETS = (0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300, 900, 3600, 4 * 3600)
_BULK_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30)


class BoundedLabel:
    """Maps an open set of values onto at most ``limit`` label values plus ``_other``."""

    def __init__(self, limit: int) -> None:
        self._limit = limit
        self._kept: set[str] = set()
        self._lock = threading.Lock()

    def __call__(self, value: str) -> str:
        if value in self._kept:
            return value
        with self._lock:
            if len(self._kept) < self._limit:
                self._kept.add(value)
                return value
        return OTHER


namespace_label = BoundedLabel(MAX_NAMESPACE_LABELS)


def event_type_label(value: str) -> str:
    return value if value in ("Normal", "Warning") else OTHER


_CHILDREN: dict[tuple[int, str, str], Any] = {}


def by_type_and_namespace(counter: Counter, event_type: str, namespace: str) -> Any:
    """``counter``'s child for this event type and namespace (bounded labels), cached.

    Looking a labelled child up costs more than the increment itself, on the path every event takes.
    """
    labels = (event_type_label(event_type), namespace_label(namespace))
    key = (id(counter), *labels)
    child = _CHILDREN.get(key)
    if child is None:
        child = _CHILDREN[key] = counter.labels(type=labels[0], namespace=labels[1])
    return child


EVENTS_INGESTED = Counter(
    "k8sev_events_ingested_total",
    "Event versions written to the raw topic by the watch",
    ["type", "namespace"],
    registry=REGISTRY,
)
EVENTS_FILTERED = Counter(
    "k8sev_events_filtered_total",
    "Event versions the watch saw but the configured filters dropped",
    ["filter"],
    registry=REGISTRY,
)
WATCH_DELETIONS = Counter(
    "k8sev_watch_deleted_total",
    "DELETED notifications (events expiring from the API server); not occurrences, not forwarded",
    registry=REGISTRY,
)
DEDUP_DROPPED = Counter(
    "k8sev_dedup_dropped_total",
    "Raw records dropped by dedup: a version already delivered, or older",
    ["verdict"],
    registry=REGISTRY,
)
DEDUP_DELIVERED = Counter(
    "k8sev_dedup_delivered_total",
    "New event versions dedup forwarded to the clean topic",
    ["type", "namespace"],
    registry=REGISTRY,
)
OCCURRENCES = Counter(
    "k8sev_event_occurrences_total",
    "Occurrences counted (growth of count/series.count)",
    ["type", "namespace"],
    registry=REGISTRY,
)
EVENTS_INDEXED = Counter(
    "k8sev_events_indexed_total",
    "Documents the search engine acknowledged",
    ["type", "namespace"],
    registry=REGISTRY,
)
EVENTS_REJECTED = Counter(
    "k8sev_events_rejected_total",
    "Records sent to the dead-letter topic",
    ["stage", "reason"],
    registry=REGISTRY,
)
WATCH_RESTARTS = Counter(
    "k8sev_watch_restarts_total",
    "WATCH requests re-opened, by cause",
    ["cause"],
    registry=REGISTRY,
)
WATCH_RELISTS = Counter(
    "k8sev_watch_relists_total",
    "Full paginated LISTs (at start and after 410 Gone)",
    registry=REGISTRY,
)
WATCH_UP = Gauge(
    "k8sev_watch_up",
    "1 while this worker's watch is connected and streaming",
    registry=REGISTRY,
)
WATCH_STALLS = Counter(
    "k8sev_watch_stalls_total",
    "WATCHes found silent while the API server had newer events of their scope; each lists again",
    registry=REGISTRY,
)
WATCH_GAPS = Counter(
    "k8sev_watch_possible_loss_total",
    "Relists after a pause longer than the event TTL: events of that pause may have expired unseen",
    registry=REGISTRY,
)
WATCH_GAP_SECONDS = Counter(
    "k8sev_watch_possible_loss_seconds_total",
    "Length of the periods whose events may have expired unseen",
    registry=REGISTRY,
)
LEADER = Gauge(
    "k8sev_ingest_leader",
    "1 while this worker holds the ingest lease and runs the watch",
    registry=REGISTRY,
)
LEADER_TRANSITIONS = Counter(
    "k8sev_ingest_leadership_acquired_total",
    "Times this worker acquired the ingest lease",
    registry=REGISTRY,
)
CHECKPOINT_WRITES = Counter(
    "k8sev_ingest_checkpoint_writes_total",
    "Lease renewals that stored the ingest checkpoint",
    registry=REGISTRY,
)
INGEST_LAG = Histogram(
    "k8sev_ingest_lag_seconds",
    "Now minus the event's own time, when the watch hands it to Kafka",
    buckets=_LAG_BUCKETS,
    registry=REGISTRY,
)
BULK_DURATION = Histogram(
    "k8sev_bulk_request_duration_seconds",
    "Duration of one bulk request to the search engine",
    buckets=_BULK_BUCKETS,
    registry=REGISTRY,
)
BULK_RETRIES = Counter(
    "k8sev_bulk_retries_total",
    "Bulk requests or items retried, by cause",
    ["cause"],
    registry=REGISTRY,
)
BULK_FAILURES = Counter(
    "k8sev_bulk_failures_total",
    "Whole requests to the search engine that failed, by cause (http_<status>, timeout, connection, error) "
    "and whether the cause will not pass by itself (401, 403, 404, 400)",
    ["cause", "permanent"],
    registry=REGISTRY,
)
AGENT_CRASHES = Counter(
    "k8sev_agent_crashes_total",
    "Crashes of an agent's actor seen by the health watch (Faust's supervisor restarts it)",
    ["agent"],
    registry=REGISTRY,
)
LOOP_BLOCKED = Counter(
    "k8sev_loop_blocked_total",
    "Times the event loop's heartbeat stopped for longer than the liveness bound",
    registry=REGISTRY,
)
SEARCH_UP = Gauge(
    "k8sev_search_up",
    "1 while the last request to the search engine succeeded",
    registry=REGISTRY,
)
INDICES_DELETED = Counter(
    "k8sev_retention_indices_deleted_total",
    "Daily indices deleted by retention",
    registry=REGISTRY,
)
INGEST_STALE_DROPPED = Counter(
    "k8sev_ingest_stale_items_dropped_total",
    "Watch items of a stopped leadership term (or a restarted watch) dropped unpublished",
    registry=REGISTRY,
)
CONSUMER_LAG = Gauge(
    "k8sev_consumer_lag_records",
    "Records of the topic that the stage has not finished and committed, on the partitions this worker owns",
    ["topic", "stage"],
    registry=REGISTRY,
)
EVENTS_TRUNCATED = Counter(
    "k8sev_events_truncated_total",
    "Events cut to fit the producer's record limit (marked `truncated` in the document)",
    registry=REGISTRY,
)
EVENTS_UNPUBLISHABLE = Counter(
    "k8sev_ingest_unpublishable_total",
    "Events that could not be encoded or cut to fit, skipped (logged with their uid)",
    registry=REGISTRY,
)
EVENTS_ENRICHED = Counter(
    "k8sev_events_enriched_total",
    "Events published with their involved object's labels and owners (enriched), or without: not cached (unknown)",
    ["outcome"],
    registry=REGISTRY,
)
ENRICH_WATCH_UP = Gauge(
    "k8sev_enrich_watch_up",
    "1 while the leader's metadata watch of a resource streams; 0 while it lists, fails or is refused (403)",
    ["resource"],
    registry=REGISTRY,
)
ENRICH_WATCH_RESTARTS = Counter(
    "k8sev_enrich_watch_restarts_total",
    "Metadata watches listed again or re-opened after a failure, by resource and cause",
    ["resource", "cause"],
    registry=REGISTRY,
)
ENRICH_HELD_TIMEOUTS = Counter(
    "k8sev_enrich_held_timeouts_total",
    "Events held for their object's metadata watch to catch up that it did not within 2 s (sent without labels)",
    ["resource"],
    registry=REGISTRY,
)
ENRICH_CACHE_OBJECTS = Gauge(
    "k8sev_enrich_cache_objects",
    "Objects in the enrichment cache (bounded by K8SEV_ENRICH_CACHE_SIZE)",
    registry=REGISTRY,
)


#: A check named ``watch[<scope>]`` is one per watched namespace: one label value for them all.
_CHECK_FAMILY = re.compile(r"\[.*\]$")


class ReadinessCollector(Collector):
    """``k8sev_ready`` and ``k8sev_readiness_check_ok{check}``, read from /readyz's checks at scrape time.

    A gauge set by each part would repeat what the health registry already holds and could disagree
    with /readyz; reading the report costs one pass over a dozen checks per scrape.
    """

    def __init__(self, report: Callable[[], tuple[bool, Mapping[str, Mapping[str, object]]]]) -> None:
        #: The worker's readiness registry's report (set by the web views' install).
        self.report = report

    def collect(self) -> Iterator[Metric]:
        ready, checks = self.report()
        yield GaugeMetricFamily("k8sev_ready", "1 while /readyz answers 200 (every readiness check passes)", ready)
        by_family: dict[str, bool] = {}
        for name, check in checks.items():
            family = _CHECK_FAMILY.sub("", name)
            by_family[family] = by_family.get(family, True) and bool(check["ok"])
        family_metric = GaugeMetricFamily(
            "k8sev_readiness_check_ok",
            "1 while this readiness check of /readyz passes (watch: every watched scope streams)",
            labels=["check"],
        )
        for family, ok in sorted(by_family.items()):
            family_metric.add_metric([family], 1 if ok else 0)
        yield family_metric


READINESS_METRICS = ReadinessCollector(Health().report)
REGISTRY.register(READINESS_METRICS)
# k8sev_process_start_time_seconds (a restart moves it), CPU, memory and open files of the worker.
ProcessCollector(namespace="k8sev", registry=REGISTRY)
