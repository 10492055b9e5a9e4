"""The series /metrics derives at scrape time: readiness as /readyz reports it, and the process's own."""

from __future__ import annotations

from prometheus_client import CollectorRegistry

from streams.core import metrics
from streams.core.health import Health


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def scrape(health: Health) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    registry = CollectorRegistry()
    registry.register(metrics.ReadinessCollector(health.report))
    return {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in registry.collect()
        for sample in family.samples
    }


def test_ready_follows_the_readiness_report_and_names_the_failing_check() -> None:
    clock = Clock()
    health = Health(clock)
    health.set("kafka", True, "k:9092")
    health.set("sink", False, "bulk failing", grace=60)
    samples = scrape(health)
    # Within its grace the failing sink does not fail /readyz, so neither does the metric.
    assert samples[("k8sev_ready", ())] == 1
    assert samples[("k8sev_readiness_check_ok", (("check", "sink"),))] == 1
    clock.now += 61
    samples = scrape(health)
    assert samples[("k8sev_ready", ())] == 0
    assert samples[("k8sev_readiness_check_ok", (("check", "sink"),))] == 0
    assert samples[("k8sev_readiness_check_ok", (("check", "kafka"),))] == 1
    health.set("sink", True, "elasticsearch")
    assert scrape(health)[("k8sev_ready", ())] == 1


def test_every_watched_scope_is_one_watch_label_failing_when_any_scope_fails() -> None:
    health = Health(Clock())
    health.set("watch[default]", True, "streaming")
    health.set("watch[prod]", True, "streaming")
    assert scrape(health)[("k8sev_readiness_check_ok", (("check", "watch"),))] == 1
    health.set("watch[prod]", False, "connection: refused")
    samples = scrape(health)
    assert samples[("k8sev_readiness_check_ok", (("check", "watch"),))] == 0
    assert [key for key in samples if key[0] == "k8sev_readiness_check_ok"] == [
        ("k8sev_readiness_check_ok", (("check", "watch"),))
    ]


def test_the_worker_registry_carries_readiness_and_the_process_start_time() -> None:
    names = {family.name for family in metrics.REGISTRY.collect()}
    assert {"k8sev_ready", "k8sev_process_start_time_seconds", "k8sev_process_resident_memory_bytes"} <= names
