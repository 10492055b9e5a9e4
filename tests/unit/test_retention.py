from __future__ import annotations

from datetime import date

from streams.retention.policy import expired


def test_keeps_the_configured_number_of_days_and_ignores_other_indices() -> None:
    names = [
        "k8s-event-2026.10.30",
        "k8s-event-2026.10.31",
        "k8s-event-2026.11.01",
        "k8s-event-2026.11.30",
        "k8s-event-other-2020.01.01",
        "k8s-event-2026.13.45",
        "logs-2020.01.01",
        "k8s-event",
    ]
    assert expired(names, "k8s-event", 30, date(2026, 11, 30)) == ["k8s-event-2026.10.30", "k8s-event-2026.10.31"]
