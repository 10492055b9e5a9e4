"""What the deployment tests share: paths, the worker's defaults and YAML loading.

``k8s/`` is rendered by the real kustomize and the chart by the real Helm (:mod:`tests.fixtures.tools`).
"""

from __future__ import annotations

import tomllib
from pathlib import Path
from typing import Any

import yaml

from streams.config.settings import Settings

ROOT = Path(__file__).resolve().parents[2]
COMPOSE_DIR = ROOT / "compose"
COMPOSE_FILE = COMPOSE_DIR / "docker-compose.yml"
K8S_DIR = ROOT / "k8s"
CHART_DIR = K8S_DIR / "helm" / "k8s-event-streams"
DOCKERFILE = ROOT / "Dockerfile"
DEPLOY_DOC = ROOT / "docs" / "deploy.md"

# Kinds without a namespace, among those the manifests and the chart use.
CLUSTER_SCOPED = {"Namespace", "ClusterRole", "ClusterRoleBinding", "CustomResourceDefinition"}


def project_version() -> str:
    with (ROOT / "pyproject.toml").open("rb") as f:
        version: str = tomllib.load(f)["project"]["version"]
    return version


def image_name() -> str:
    """The worker image as the Dockerfile, compose, k8s and the docs name it."""
    return f"k8s-event-streams:{project_version()}"


def defaults() -> dict[str, str]:
    """Every K8SEV_* variable and its default, from the worker's own settings."""
    return {variable: default for _, variable, default, _ in Settings.documentation()}


def default_settings() -> Settings:
    return Settings.from_env({})


def load_yaml(path: Path) -> Any:
    return yaml.safe_load(path.read_text())


def load_all_yaml(path: Path) -> list[dict[str, Any]]:
    return [doc for doc in yaml.safe_load_all(path.read_text()) if doc]


def find(objects: list[dict[str, Any]], kind: str, name: str | None = None) -> dict[str, Any]:
    matches = [o for o in objects if o["kind"] == kind and (name is None or o["metadata"]["name"] == name)]
    assert len(matches) == 1, f"expected one {kind} {name or ''}, found {len(matches)}"
    return matches[0]


def granted_rules(objects: list[dict[str, Any]], account: str) -> set[tuple[str, str, str]]:
    """Every (apiGroup, resource, verb) the objects' bindings give the ServiceAccount ``account``."""
    roles = {(o["kind"], o["metadata"]["name"]): o for o in objects if o["kind"] in ("ClusterRole", "Role")}
    granted = set()
    for binding in (o for o in objects if o["kind"] in ("ClusterRoleBinding", "RoleBinding")):
        if not any(s["kind"] == "ServiceAccount" and s["name"] == account for s in binding["subjects"]):
            continue
        role = roles[(binding["roleRef"]["kind"], binding["roleRef"]["name"])]
        for rule in role["rules"]:
            granted |= {(g, r, v) for g in rule["apiGroups"] for r in rule["resources"] for v in rule["verbs"]}
    return granted


def role_environment(objects: list[dict[str, Any]], deployment: str) -> dict[str, str]:
    """What one Deployment's worker process sees (its ConfigMap overlaid by its literal env)."""
    (worker,) = find(objects, "Deployment", deployment)["spec"]["template"]["spec"]["containers"]
    (source,) = worker["envFrom"]
    data = find(objects, "ConfigMap", source["configMapRef"]["name"])["data"]
    literal = {e["name"]: e["value"] for e in worker["env"] if "value" in e and "$(" not in e["value"]}
    return {**data, **literal, "K8SEV_IDENTITY": "the-pod"}
