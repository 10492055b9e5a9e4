"""The deployment defaults of the explorer: Kubernetes auth and a NetworkPolicy, in the chart and in k8s/.

``none`` (no authentication) only with an explicit value (chart ``explorer.allowAnonymous``, kustomize
``components/anonymous-explorer``), and then the NOTES warn; the NetworkPolicy is on unless
``networkPolicy.enabled=false`` (kustomize ``components/no-networkpolicy``). Rendered by the real Helm
and kustomize; the settings they give are read by the worker's own Settings.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path
from typing import Any

import pytest
import yaml

from streams.config.settings import Settings
from tests.deploy.helpers import CHART_DIR, K8S_DIR, find
from tests.fixtures.tools import ToolError, helm, helm_template, kustomize_build, values_file

pytestmark = pytest.mark.deploy

NAMESPACE = "k8s-event-streams"
RELEASE = "events"
COMPONENTS = K8S_DIR / "components"
INGRESS_NGINX = {"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "ingress-nginx"}}}
WEB = [{"port": "web", "protocol": "TCP"}]


def chart(*sets: str, values: dict[str, Any] | None = None, tmp_path: Path | None = None) -> list[dict[str, Any]]:
    values_path = values_file(tmp_path, values) if values is not None and tmp_path is not None else None
    return helm_template(CHART_DIR, RELEASE, NAMESPACE, sets=sets, values=values_path)


def overlay(tmp_path: Path, *components: str) -> list[dict[str, Any]]:
    """k8s/ with these components, as an overlay in the repository would list them."""
    directory = tmp_path / "overlay"
    directory.mkdir()
    spec = {
        "resources": [os.path.relpath(K8S_DIR, directory)],
        "components": [os.path.relpath(COMPONENTS / c, directory) for c in components],
    }
    (directory / "kustomization.yaml").write_text(yaml.safe_dump(spec))
    return kustomize_build(directory)


def config(objects: list[dict[str, Any]]) -> dict[str, str]:
    data: dict[str, str] = next(o for o in objects if o["kind"] == "ConfigMap" and "K8SEV_BROKER" in o["data"])["data"]
    return data


def policies(objects: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [o for o in objects if o["kind"] == "NetworkPolicy"]


def pod_labels(objects: list[dict[str, Any]]) -> dict[str, str]:
    """The labels every worker pod has (the split topology's two Deployments differ in their role)."""
    every = [o["spec"]["template"]["metadata"]["labels"] for o in objects if o["kind"] == "Deployment"]
    assert every, "no Deployment"
    return {k: v for k, v in every[0].items() if all(labels.get(k) == v for labels in every)}


def admits(policy: dict[str, Any], labels: dict[str, str], namespace_labels: dict[str, str], own: bool) -> bool:
    """Whether a pod with ``labels`` in a namespace with ``namespace_labels`` reaches the web port.

    ``own``: that namespace is the policy's. Only the forms the manifests use (matchLabels, no ipBlock).
    """

    def matches(selector: dict[str, Any], subject: dict[str, str]) -> bool:
        assert set(selector) <= {"matchLabels"}, selector
        wanted: dict[str, str] = selector.get("matchLabels", {})
        return wanted.items() <= subject.items()

    for rule in policy["spec"]["ingress"]:
        assert rule["ports"] == WEB, rule
        for peer in rule["from"]:
            in_namespace = matches(peer["namespaceSelector"], namespace_labels) if "namespaceSelector" in peer else own
            if in_namespace and matches(peer.get("podSelector", {}), labels):
                return True
    return False


def monitoring(name: str = "monitoring") -> dict[str, str]:
    return {"kubernetes.io/metadata.name": name}


# --- the defaults --------------------------------------------------------------------------------


@pytest.mark.parametrize("source", ["chart", "kustomize"])
def test_by_default_the_explorer_takes_kubernetes_auth_and_a_policy_guards_the_port(source: str) -> None:
    objects = chart() if source == "chart" else kustomize_build(K8S_DIR)
    assert config(objects)["K8SEV_EXPLORER_AUTH"] == "kubernetes"
    assert Settings.from_env({**config(objects), "K8SEV_IDENTITY": "pod"}).explorer.mode == "kubernetes"
    (policy,) = policies(objects)
    workers = pod_labels(objects)
    assert policy["metadata"]["namespace"] == NAMESPACE
    assert policy["spec"]["podSelector"]["matchLabels"].items() <= workers.items()
    # Ingress only: the worker's own egress (Kafka, the search engine, the API server) is not touched.
    assert policy["spec"]["policyTypes"] == ["Ingress"] and "egress" not in policy["spec"]
    own = monitoring(NAMESPACE)
    prometheus = {"app.kubernetes.io/name": "prometheus", "prometheus": "k8s"}
    assert admits(policy, workers, own, own=True), "the workers read each other's /counts views"
    assert admits(policy, prometheus, monitoring(), own=False)
    assert not admits(policy, {"app": "anything"}, own, own=True)
    assert not admits(policy, {"app": "anything"}, monitoring(), own=False)
    assert not admits(policy, prometheus, monitoring("team-a"), own=False), "a pod named so elsewhere"
    assert not admits(policy, workers, monitoring("team-a"), own=False)


def test_the_chart_and_k8s_render_the_same_policy() -> None:
    def spec(objects: list[dict[str, Any]]) -> dict[str, Any]:
        (policy,) = policies(objects)
        rest: dict[str, Any] = {k: v for k, v in policy["spec"].items() if k != "podSelector"}
        return rest

    assert spec(chart()) == spec(kustomize_build(K8S_DIR))


# --- the explicit values -------------------------------------------------------------------------


def test_allow_anonymous_renders_none_and_the_component_does_the_same(tmp_path: Path) -> None:
    for objects in (chart("explorer.allowAnonymous=true"), overlay(tmp_path, "anonymous-explorer")):
        assert config(objects)["K8SEV_EXPLORER_AUTH"] == "none"
        assert not Settings.from_env({**config(objects), "K8SEV_IDENTITY": "pod"}).explorer.protected
        assert len(policies(objects)) == 1, "the policy stays"


def test_network_policy_disabled_removes_it_and_the_component_does_the_same(tmp_path: Path) -> None:
    assert policies(chart("networkPolicy.enabled=false")) == []
    assert policies(overlay(tmp_path, "no-networkpolicy")) == []
    # And nothing else changes.
    assert {o["kind"] for o in chart()} - {o["kind"] for o in chart("networkPolicy.enabled=false")} == {"NetworkPolicy"}


def test_a_shared_token_or_basic_pair_replaces_kubernetes_auth() -> None:
    token = ("explorer.auth.existingSecret=ui", "explorer.auth.tokenKey=token")
    basic = ("explorer.auth.existingSecret=ui", "explorer.auth.username=ops", "explorer.auth.passwordKey=pw")
    assert config(chart(*token))["K8SEV_EXPLORER_AUTH"] == "token"
    assert config(chart(*basic))["K8SEV_EXPLORER_AUTH"] == "basic"
    # Both: token mode, which accepts the basic pair as well (the worker takes one mode).
    assert config(chart(*token, *basic[1:]))["K8SEV_EXPLORER_AUTH"] == "token"


def test_allowed_clients_prometheus_and_egress_reach_the_policy(tmp_path: Path) -> None:
    values: dict[str, Any] = {
        "networkPolicy": {
            "allowedClients": [INGRESS_NGINX, {"ipBlock": {"cidr": "10.0.0.0/24"}}],
            "prometheus": [{"namespaceSelector": {"matchLabels": monitoring("observability")}}],
            "egress": {
                "enabled": True,
                "rules": [{"to": [{"ipBlock": {"cidr": "10.1.0.0/16"}}], "ports": [{"port": 9092, "protocol": "TCP"}]}],
            },
        },
        "ingress": {"enabled": True, "host": "events.example.com"},
    }
    objects = chart(values=values, tmp_path=tmp_path)
    (policy,) = policies(objects)
    ingress = policy["spec"]["ingress"]
    assert ingress[1] == {"from": values["networkPolicy"]["allowedClients"], "ports": WEB}
    assert ingress[2] == {"from": [{"namespaceSelector": {"matchLabels": monitoring("observability")}}], "ports": WEB}
    assert policy["spec"]["policyTypes"] == ["Ingress", "Egress"]
    egress = policy["spec"]["egress"]
    assert {"port": 53, "protocol": "UDP"} in egress[0]["ports"] and "to" not in egress[0], "DNS anywhere"
    assert egress[1]["to"][0]["podSelector"]["matchLabels"].items() <= pod_labels(objects).items()
    assert egress[2:] == values["networkPolicy"]["egress"]["rules"]
    helm("lint", "--strict", str(CHART_DIR), "--values", str(values_file(tmp_path, values, "lint.yaml")))
    # No scraper: no rule for it at all.
    (dropped,) = policies(chart("networkPolicy.prometheus=null"))
    assert len(dropped["spec"]["ingress"]) == 1


def test_the_explorer_component_lets_the_ingress_controller_in_with_a_token(tmp_path: Path) -> None:
    objects = overlay(tmp_path, "explorer")
    assert config(objects)["K8SEV_EXPLORER_AUTH"] == "token"
    (policy,) = policies(objects)
    assert {"from": [INGRESS_NGINX], "ports": WEB} in policy["spec"]["ingress"]
    assert admits(policy, {"app": "controller"}, monitoring("ingress-nginx"), own=False)
    # With the policy removed too, in either order.
    for order in (("explorer", "no-networkpolicy"), ("no-networkpolicy", "explorer")):
        shutil.rmtree(tmp_path / "overlay")
        assert policies(overlay(tmp_path, *order)) == []


@pytest.mark.parametrize(
    ("setting", "message"),
    [
        (
            "explorer.allowAnonymous=true,explorer.auth.existingSecret=ui,explorer.auth.tokenKey=t",
            "explorer.allowAnonymous=true with explorer.auth",
        ),
        (
            "explorer.allowAnonymous=true,explorer.auth.existingSecret=ui,explorer.auth.username=ops,explorer.auth.passwordKey=p",
            "explorer.allowAnonymous=true with explorer.auth",
        ),
        ("extraEnv.K8SEV_EXPLORER_AUTH=none", "the chart sets K8SEV_EXPLORER_AUTH itself"),
        ("ingress.enabled=true", "name the ingress controller's pods in networkPolicy.allowedClients"),
        ("networkPolicy.egress.enabled=true", "list networkPolicy.egress.rules"),
        ("networkPolicy.allowedClients[0].podSelector.matchLabel.app=x", "matchLabel"),
        ("networkPolicy.allowedClients[0].ipBlock.except[0]=10.0.0.1/32", "cidr"),
    ],
)
def test_contradictory_values_fail_with_a_clear_message(setting: str, message: str) -> None:
    with pytest.raises(ToolError, match=message):
        chart(setting)


def test_an_ingress_without_a_policy_needs_no_allowed_clients() -> None:
    assert find(chart("ingress.enabled=true", "networkPolicy.enabled=false"), "Ingress")


# --- NOTES.txt -----------------------------------------------------------------------------------


def notes(tmp_path: Path, *sets: str) -> str:
    """NOTES.txt as Helm renders it for these values.

    ``helm template`` prints no notes and ``helm install --dry-run`` needs an API server, so a copy of
    the chart carries the same file as a template of a ConfigMap, rendered by the real Helm.
    """
    copy = tmp_path / f"chart-{len(list(tmp_path.iterdir()))}"
    shutil.copytree(CHART_DIR, copy)
    text = (CHART_DIR / "templates" / "NOTES.txt").read_text()
    wrapper = (
        '{{- define "test.notes" -}}\n' + text + "\n{{- end -}}\n"
        "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: rendered-notes\n"
        'data:\n  notes: {{ include "test.notes" . | quote }}\n'
    )
    (copy / "templates" / "zz-notes.yaml").write_text(wrapper)
    objects = helm_template(copy, RELEASE, NAMESPACE, sets=sets)
    rendered: str = find(objects, "ConfigMap", "rendered-notes")["data"]["notes"]
    return rendered


def test_the_notes_warn_only_when_the_explorer_is_open(tmp_path: Path) -> None:
    default = notes(tmp_path)
    assert "WARNING" not in default and "kubectl create token" in default
    anonymous = notes(tmp_path, "explorer.allowAnonymous=true")
    assert "WARNING: explorer.allowAnonymous=true" in anonymous and "without authentication" in anonymous
    assert "The Ingress exposes" not in anonymous
    exposed = notes(
        tmp_path,
        "explorer.allowAnonymous=true",
        "ingress.enabled=true",
        "networkPolicy.allowedClients[0].ipBlock.cidr=10.0.0.0/8",
    )
    assert "The Ingress exposes the explorer (/ui) to anyone" in exposed
    assert "WARNING" not in notes(tmp_path, "explorer.auth.existingSecret=ui", "explorer.auth.tokenKey=t")
    # kubectl eventlog's users are told the Service to name and the Role they need.
    assert "export K8SEV_EVENTLOG_SERVICE=" in default and ":web" in default.split("K8SEV_EVENTLOG_SERVICE=")[1]
    assert "get on services/proxy" in default
    assert "every pod in the cluster reaches the web port" in notes(tmp_path, "networkPolicy.enabled=false")
    assert "every pod in the cluster" not in default
