"""The worker's Faust monitor: per-record series neither registered nor updated; the rest kept."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, generate_latest

from streams.ops.monitor import PER_RECORD, RebalanceMonitor, faust_metrics


def _names(registry: CollectorRegistry) -> set[str]:
    return {metric.name for metric in registry.collect()}


def test_per_record_series_are_not_registered_and_the_rest_are() -> None:
    registry = CollectorRegistry()
    metrics = faust_metrics(registry, "t")
    names = _names(registry)
    for field in PER_RECORD:
        assert getattr(metrics, field)._name not in names, field
    assert {"t_total_rebalances", "t_assign_latency", "t_consumer_commit_latency"} <= names
    # Built again for the same registry: the same series, not a second registration.
    assert faust_metrics(registry, "t") is metrics


def test_per_record_hooks_do_nothing_and_send_errors_are_counted() -> None:
    registry = CollectorRegistry()
    monitor = RebalanceMonitor(metrics=faust_metrics(registry, "u"))
    monitor.on_message_in(None, 1, None)
    monitor.on_stream_event_in(None, 1, None, None)
    monitor.on_send_initiated(None, "topic", None, 1, 1)
    monitor.on_send_completed(None, None, None)
    monitor.on_table_get(None, "key")
    assert monitor.messages_received_total == 0 and monitor.events_total == 0
    monitor.on_send_error(None, RuntimeError("broker gone"), None)
    assert monitor.send_errors == 1
    assert b"u_total_error_messages_sent_total 1.0" in generate_latest(registry)
