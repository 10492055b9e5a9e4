"""The alert rules: checked and unit-tested by the real promtool, the same in the chart and in kustomize.

``k8s/helm/k8s-event-streams/rules/k8s-event-streams.rules.yaml`` is the one source: the chart's
PrometheusRule reads it, ``k8s/components/prometheusrule`` is generated from it. The promtool unit
tests (``tests/deploy/rules/``) run against the file and against what Helm and kustomize render, so a
rendering that changed a rule fails here too.
"""

from __future__ import annotations

import importlib.util
import os
import re
import subprocess
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest
import yaml

from devstack import tools
from tests.deploy.helpers import CHART_DIR, K8S_DIR, ROOT, find, load_yaml
from tests.deploy.test_grafana import exposed_series
from tests.fixtures.tools import helm_template, kustomize_build

pytestmark = pytest.mark.deploy

RULES = CHART_DIR / "rules" / "k8s-event-streams.rules.yaml"
UNIT_TESTS = ROOT / "tests" / "deploy" / "rules" / "k8s-event-streams.rules.test.yaml"
RUNBOOKS = ROOT / "docs" / "runbooks.md"
COMPONENT = K8S_DIR / "components" / "prometheusrule"
PLACEHOLDER = "https://k8s-event-streams.example/docs/runbooks.md"
_METRIC = re.compile(r"\bk8sev_[a-z0-9_]+\b")


def promtool(*args: str) -> str:
    result = subprocess.run([str(tools.promtool()), *args], capture_output=True, text=True, timeout=120, check=False)
    assert result.returncode == 0, (
        f"promtool {' '.join(args)} exited {result.returncode}:\n{result.stdout}{result.stderr}"
    )
    return result.stdout


def rules() -> list[dict[str, Any]]:
    return [rule for group in load_yaml(RULES)["groups"] for rule in group["rules"]]


def alerts() -> dict[str, dict[str, Any]]:
    return {rule["alert"]: rule for rule in rules() if "alert" in rule}


def unit_tests_against(directory: Path, groups: dict[str, Any]) -> str:
    """Run the promtool unit tests on ``groups`` (a rendered PrometheusRule's spec)."""
    rendered = directory / "rendered.rules.yaml"
    rendered.write_text(yaml.safe_dump(groups, sort_keys=False))
    tests = load_yaml(UNIT_TESTS)
    tests["rule_files"] = [rendered.name]
    test_file = directory / "rendered.rules.test.yaml"
    test_file.write_text(yaml.safe_dump(tests, sort_keys=False))
    promtool("check", "rules", str(rendered))
    return promtool("test", "rules", str(test_file))


def test_promtool_checks_the_rules_file() -> None:
    out = promtool("check", "rules", str(RULES))
    assert f"SUCCESS: {len(rules())} rules found" in out


def test_promtool_unit_tests_pass_on_the_rules_file() -> None:
    out = promtool("test", "rules", str(UNIT_TESTS))
    assert "SUCCESS" in out


def test_every_alert_has_a_case_that_fires_and_one_that_stays_quiet() -> None:
    fires: set[str] = set()
    quiet: set[str] = set()
    for case in load_yaml(UNIT_TESTS)["tests"]:
        for check in case.get("alert_rule_test", []):
            (fires if check["exp_alerts"] else quiet).add(check["alertname"])
    assert set(alerts()) - fires == set(), "alerts no unit test sees firing"
    assert set(alerts()) - quiet == set(), "alerts no unit test sees staying quiet"
    assert (fires | quiet) - set(alerts()) == set(), "unit tests of alerts that do not exist"


def test_the_promised_alerts_are_there() -> None:
    names = set(alerts())
    for promised in (
        "K8sEventStreamsNoLeader",
        "K8sEventStreamsWatchNotStreaming",
        "K8sEventStreamsPossibleEventLoss",
        "K8sEventStreamsSinkFailing",
        "K8sEventStreamsSinkRefused",
        "K8sEventStreamsDeadLetters",
        "K8sEventStreamsAgentCrashLooping",
        "K8sEventStreamsNotReady",
        "K8sEventStreamsConsumerLagHigh",
        "K8sEventStreamsConsumerLagGrowing",
    ):
        assert promised in names


def test_every_alert_queries_only_metrics_the_worker_exposes() -> None:
    known = exposed_series()
    for name, rule in alerts().items():
        used = set(_METRIC.findall(rule["expr"]))
        assert used, f"{name} queries no k8sev_* metric"
        assert used <= known, f"{name}: not exposed by streams.core.metrics.REGISTRY: {sorted(used - known)}"


def anchors(markdown: str) -> set[str]:
    """The fragment of each heading, as GitHub and most renderers make it."""
    found = set()
    for line in markdown.splitlines():
        if line.startswith("#"):
            title = line.lstrip("#").strip().lower()
            found.add(re.sub(r"[^a-z0-9 _-]", "", title).replace(" ", "-"))
    return found


def test_every_alert_has_a_summary_a_description_and_a_runbook_section() -> None:
    sections = anchors(RUNBOOKS.read_text())
    runbooks = RUNBOOKS.read_text()
    for name, rule in alerts().items():
        annotations = rule["annotations"]
        assert annotations["summary"] and annotations["description"], name
        assert rule["labels"]["severity"] in ("critical", "warning"), name
        assert annotations["runbook_url"] == f"{PLACEHOLDER}#{name.lower()}", name
        assert name.lower() in sections, f"docs/runbooks.md has no section {name}"
        section = runbooks.split(f"## {name}\n", 1)[1].split("\n## ", 1)[0]
        for part in ("**Means.**", "**Check.**", "**Fix.**"):
            assert part in section, f"{name}'s runbook lacks {part}"
        assert "```sh" in section, f"{name}'s runbook shows no command"
        assert f"[{name}](#{name.lower()})" in runbooks, f"the runbooks' table does not list {name}"


def test_the_runbooks_name_only_metrics_the_worker_exposes() -> None:
    known = exposed_series()
    named = set(re.findall(r"\bk8sev_[a-z0-9_]*[a-z0-9]", RUNBOOKS.read_text()))
    assert named, "the runbooks name metrics"
    # A name may be a prefix to grep for (k8sev_watch_possible_loss).
    unknown = {name for name in named if not any(series.startswith(name) for series in known)}
    assert not unknown, f"docs/runbooks.md names metrics the worker does not expose: {sorted(unknown)}"


_LOG_CALL = re.compile(r'logs\.[a-z]+\(\s*log,\s*"([a-z_]+)"(?:\s+if [^,]+ else "([a-z_]+)")?')


def test_the_runbooks_name_log_events_the_worker_writes() -> None:
    written: set[str] = set()
    for path in [*(ROOT / "streams").rglob("*.py"), *(ROOT / "agents").rglob("*.py")]:
        for names in _LOG_CALL.findall(path.read_text()):
            written.update(name for name in names if name)
    assert {"possible_event_loss", "search_request_refused", "search_unavailable"} <= written
    named = re.findall(r"event=\(?([a-z_|]+)", RUNBOOKS.read_text())
    events = {part for group in named for part in group.split("|") if part}
    assert len(events) > 10, "the runbooks name the log events to look for"
    assert events <= written, f"docs/runbooks.md names log events the worker never writes: {sorted(events - written)}"


def test_the_kustomize_component_is_generated_from_the_rules_file() -> None:
    spec = importlib.util.spec_from_file_location("gen_prometheusrule", ROOT / "scripts" / "gen_prometheusrule.py")
    assert spec is not None and spec.loader is not None
    script: ModuleType = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(script)
    assert script.main(["--check"]) == 0, "run: python scripts/gen_prometheusrule.py"


def test_the_chart_renders_no_prometheusrule_by_default() -> None:
    kinds = {o["kind"] for o in helm_template(CHART_DIR, "events", "k8s-event-streams")}
    assert "PrometheusRule" not in kinds


def test_the_charts_prometheusrule_carries_the_rules_file_and_passes_the_unit_tests(tmp_path: Path) -> None:
    objects = helm_template(
        CHART_DIR,
        "events",
        "monitoring-test",
        sets=("prometheusRule.enabled=true", "prometheusRule.labels.release=prometheus"),
    )
    rule = find(objects, "PrometheusRule")
    assert rule["metadata"]["name"] == "events-k8s-event-streams"
    assert rule["metadata"]["namespace"] == "monitoring-test"
    assert rule["metadata"]["labels"]["release"] == "prometheus"
    assert rule["spec"] == load_yaml(RULES)
    assert "SUCCESS" in unit_tests_against(tmp_path, rule["spec"])


def test_the_chart_points_the_runbook_links_at_the_given_base() -> None:
    base = "https://git.example.com/ops/k8s-event-streams/-/blob/main/docs/runbooks.md"
    objects = helm_template(
        CHART_DIR,
        "events",
        "k8s-event-streams",
        sets=("prometheusRule.enabled=true", f"prometheusRule.runbookBaseUrl={base}/"),
    )
    spec = find(objects, "PrometheusRule")["spec"]
    urls = [rule["annotations"]["runbook_url"] for group in spec["groups"] for rule in group["rules"]]
    assert urls == [f"{base}#{name.lower()}" for name in alerts()]


def test_the_kustomize_component_adds_the_same_rules(tmp_path: Path) -> None:
    overlay = tmp_path / "overlay"
    overlay.mkdir()
    (overlay / "kustomization.yaml").write_text(
        # kustomize takes only relative paths, as an overlay in the repository would write them.
        yaml.safe_dump(
            {"resources": [os.path.relpath(K8S_DIR, overlay)], "components": [os.path.relpath(COMPONENT, overlay)]}
        )
    )
    objects = kustomize_build(overlay)
    rule = find(objects, "PrometheusRule", "k8s-event-streams")
    assert rule["metadata"]["namespace"] == "k8s-event-streams"
    assert rule["spec"] == load_yaml(RULES)
    assert "PrometheusRule" not in {o["kind"] for o in kustomize_build(K8S_DIR)}
    assert "SUCCESS" in unit_tests_against(tmp_path, rule["spec"])
