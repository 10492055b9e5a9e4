"""The Grafana dashboard (k8s/helm/k8s-event-streams/dashboards/) queries only metrics the worker exposes."""

from __future__ import annotations

import json
import re
from typing import Any

import pytest

from streams.core.metrics import REGISTRY
from tests.deploy.helpers import K8S_DIR

pytestmark = pytest.mark.deploy

DASHBOARD = K8S_DIR / "helm" / "k8s-event-streams" / "dashboards" / "k8s-event-streams.json"
_METRIC = re.compile(r"\bk8sev_[a-z0-9_]+\b")
# The series each metric type exposes (prometheus_client: counters add _total and _created).
_SUFFIXES = {
    "counter": ("_total", "_created"),
    "gauge": ("",),
    "histogram": ("_bucket", "_count", "_sum", "_created"),
    "summary": ("", "_count", "_sum", "_created"),
    "info": ("_info",),
}


def exposed_series() -> set[str]:
    """Every sample name /metrics can carry for our registry, labelled families included."""
    names: set[str] = set()
    for family in REGISTRY.collect():
        names.update(family.name + suffix for suffix in _SUFFIXES[family.type])
    return names


def dashboard() -> dict[str, Any]:
    data: dict[str, Any] = json.loads(DASHBOARD.read_text())
    return data


def expressions() -> list[str]:
    board = dashboard()
    found = [target["expr"] for panel in board["panels"] for target in panel.get("targets", [])]
    for variable in board["templating"]["list"]:
        query = variable.get("query")
        if isinstance(query, dict):
            found.append(query["query"])
    return found


def test_every_metric_in_a_query_exists() -> None:
    known = exposed_series()
    used = {name for expr in expressions() for name in _METRIC.findall(expr)}
    assert used, "the dashboard queries k8sev_* metrics"
    unknown = used - known
    assert not unknown, f"not exposed by streams.core.metrics.REGISTRY: {sorted(unknown)}"


def test_the_promised_panels_are_there() -> None:
    text = " ".join(expressions())
    for name in (
        "k8sev_events_ingested_total",
        "k8sev_events_indexed_total",
        "k8sev_dedup_dropped_total",
        "k8sev_events_rejected_total",
        "k8sev_watch_restarts_total",
        "k8sev_ingest_lag_seconds_bucket",
        "k8sev_bulk_request_duration_seconds_bucket",
        "k8sev_consumer_lag_records",
    ):
        assert name in text, name
    assert "histogram_quantile(0.99, sum by (le) (rate(k8sev_ingest_lag_seconds_bucket" in text


def test_panels_are_laid_out_and_use_the_datasource_variable() -> None:
    board = dashboard()
    assert board["uid"] and board["title"]
    names = {v["name"] for v in board["templating"]["list"]}
    assert {"datasource", "job"} <= names
    ids = [panel["id"] for panel in board["panels"]]
    assert len(ids) == len(set(ids))
    for panel in board["panels"]:
        grid = panel["gridPos"]
        assert grid["x"] >= 0 and grid["x"] + grid["w"] <= 24, panel["title"]
        assert panel["datasource"]["uid"] == "${datasource}"
        for target in panel["targets"]:
            assert '{job=~"$job"}' in target["expr"], target["expr"]
            # Counters are read as rates or increases, never raw.
            for name in _METRIC.findall(target["expr"]):
                if name.endswith(("_total", "_bucket", "_count")):
                    assert re.search(rf"(rate|increase)\({name}\b", target["expr"]), target["expr"]
