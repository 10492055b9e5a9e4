"""bench.enrich reads the API server's request counter by verb and resource."""

from __future__ import annotations

from collections import Counter

from bench.enrich import delta, parse_dispatched, parse_requests


def series(verb: str, resource: str, subresource: str, scope: str, value: int) -> str:
    """One line of the counter, its labels in the API server's order."""
    labels = (
        f'code="200",component="apiserver",dry_run="",group="",resource="{resource}",scope="{scope}",'
        f'subresource="{subresource}",verb="{verb}",version="v1"'
    )
    return f"apiserver_request_total{{{labels}}} {value}"


METRICS = "\n".join(
    [
        "# HELP apiserver_request_total [STABLE] Counter of apiserver requests",
        "# TYPE apiserver_request_total counter",
        series("LIST", "pods", "", "cluster", 3),
        series("LIST", "pods", "", "namespace", 2),
        series("POST", "pods", "binding", "resource", 7),
        series("GET", "", "/readyz", "", 4),
        'apiserver_request_duration_seconds_count{verb="LIST",resource="pods"} 99',
    ]
)


def test_requests_are_summed_by_verb_and_resource_with_subresources_apart() -> None:
    assert parse_requests(METRICS) == Counter({("LIST", "pods"): 5, ("POST", "pods/binding"): 7, ("GET", "/readyz"): 4})


def test_a_delta_keeps_only_what_grew() -> None:
    before = Counter({("LIST", "pods"): 5, ("GET", "/readyz"): 4})
    after = Counter({("LIST", "pods"): 8, ("GET", "/readyz"): 4, ("WATCH", "jobs"): 1})
    assert delta(after, before) == Counter({("LIST", "pods"): 3, ("WATCH", "jobs"): 1})


def test_the_workers_own_requests_are_its_flow_schemas_by_kind() -> None:
    text = "\n".join(
        [
            'apiserver_flowcontrol_dispatched_requests_total{flow_schema="be-1-list",priority_level="x"} 9',
            'apiserver_flowcontrol_dispatched_requests_total{flow_schema="be-1-watch",priority_level="x"} 2',
            'apiserver_flowcontrol_dispatched_requests_total{flow_schema="be-10-list",priority_level="x"} 5',
            'apiserver_flowcontrol_dispatched_requests_total{flow_schema="exempt",priority_level="exempt"} 100',
        ]
    )
    assert parse_dispatched(text, "be-1") == Counter({"list": 9, "watch": 2})
