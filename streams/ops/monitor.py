"""Faust's Prometheus sensor without its per-record hooks: ``k8sev_faust_*`` series for rebalances,
assignments, commits and send errors; event rates come from our own ``k8sev_*`` counters.

Faust calls its monitor several times for every record consumed, processed, sent and every table
read or write, and Faust's Prometheus sensor updates labelled series each time: about a fifth of
the worker's CPU per event (bench.sink, docs/benchmarks.md) for series that repeat what
``k8sev_events_*`` and ``k8sev_dedup_*`` already count, so those hooks do nothing here and their
series are not registered: a series that exists but never moves would mislead.
"""

from __future__ import annotations

import functools
from typing import Any

from faust.sensors.prometheus import FaustMetrics, PrometheusMonitor
from prometheus_client import CollectorRegistry

#: The FaustMetrics fields only the per-record hooks update.
PER_RECORD = (
    "messages_received",
    "active_messages",
    "messages_received_per_topics",
    "messages_received_per_topics_partition",
    "events_runtime_latency",
    "total_events",
    "total_active_events",
    "total_events_per_stream",
    "table_operations",
    "topic_messages_sent",
    "total_sent_messages",
    "producer_send_latency",
)


@functools.cache
def faust_metrics(registry: CollectorRegistry, prefix: str) -> FaustMetrics:
    """Faust's series in ``registry``, less :data:`PER_RECORD`; once per process and registry (an app
    built twice, in tests and tools, must not register the same series twice)."""
    metrics = FaustMetrics.create(registry, prefix)
    for name in PER_RECORD:
        registry.unregister(getattr(metrics, name))
    return metrics


class RebalanceMonitor(PrometheusMonitor):
    """:class:`PrometheusMonitor` whose per-record hooks do nothing."""

    def on_message_in(self, *args: Any, **kwargs: Any) -> None:
        return None

    def on_stream_event_in(self, *args: Any, **kwargs: Any) -> None:
        return None

    def on_stream_event_out(self, *args: Any, **kwargs: Any) -> None:
        return None

    def on_message_out(self, *args: Any, **kwargs: Any) -> None:
        return None

    def on_table_get(self, *args: Any, **kwargs: Any) -> None:
        return None

    def on_table_set(self, *args: Any, **kwargs: Any) -> None:
        return None

    def on_table_del(self, *args: Any, **kwargs: Any) -> None:
        return None

    def on_send_initiated(self, *args: Any, **kwargs: Any) -> None:
        return None

    def on_send_completed(self, *args: Any, **kwargs: Any) -> None:
        return None

    def on_send_error(self, producer: Any, exc: BaseException, state: Any) -> None:
        # on_send_initiated kept no start time, so there is no latency to observe; count the error.
        self.send_errors += 1
        self._metrics.total_error_messages_sent.inc()
