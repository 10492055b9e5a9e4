"""k8s/helm/k8s-event-streams: the chart, checked by the real Helm, agrees with k8s/ and installs cleanly.

The static tests run ``helm lint`` and ``helm template``; the ``stack`` tests ``helm install`` into a
fresh namespace of the local API server (RBAC and Pod Security admission on, kwok playing the node),
probe the ServiceAccount's token as the kustomize tests do, upgrade, and uninstall.
"""

from __future__ import annotations

import base64
import contextlib
import copy
import importlib.util
import json
import os
import shutil
import sys
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest
import yaml
from kubernetes import client
from kubernetes.client.exceptions import ApiException
from kubernetes.dynamic import DynamicClient
from kubernetes.dynamic.exceptions import NotFoundError

from devstack import transient, wait
from streams.config.settings import Settings, SettingsError
from streams.explorer.handlers import Explorer
from streams.ingest.checkpoint import CHECKPOINT_ANNOTATION, Checkpoint, micro_time
from tests.deploy.helpers import (
    CHART_DIR,
    CLUSTER_SCOPED,
    DEPLOY_DOC,
    K8S_DIR,
    ROOT,
    defaults,
    find,
    granted_rules,
    load_yaml,
    role_environment,
)
from tests.deploy.rbac import (
    RESTRICTED,
    admin_cluster,
    assert_least_privilege,
    assert_restricted_pod_security,
    assert_streams_privilege,
    service_account_token,
    token_client,
)
from tests.fixtures.stack import unique_name
from tests.fixtures.tools import ToolError, helm, kustomize_build, parse_objects, values_file
from tests.fixtures.tools import helm_template as render_chart

pytestmark = pytest.mark.deploy

NAMESPACE = "k8s-event-streams"
RELEASE = "events"
FULLNAME = f"{RELEASE}-k8s-event-streams"


def helm_template(
    chart: Path, release: str, namespace: str, *, topology: str = "allInOne", sets: tuple[str, ...] = (), **kw: Any
) -> list[dict[str, Any]]:
    """``helm template`` of one layout: allInOne unless asked (most tests here check what one worker
    gets; the split layout's tests ask for it, and so does ``split_rendered``, the chart's default)."""
    return render_chart(chart, release, namespace, sets=(f"topology={topology}", *sets), **kw)


ALL_OPTIONS: dict[str, Any] = {
    "topology": "allInOne",
    # What a parent chart passes down to every subchart.
    "global": {"imageRegistry": "registry.example.com"},
    "image": {"repository": "registry.example.com/k8s-event-streams", "tag": "9.9.9", "pullPolicy": "Always"},
    "imagePullSecrets": [{"name": "regcred"}],
    "replicas": 3,
    # Unused with allInOne, but checked by the schema and lint all the same.
    "split": {
        "ingest": {"replicas": 3, "resources": {"requests": {"cpu": "50m", "memory": "128Mi"}}},
        "streams": {
            "replicas": 4,
            "resources": {"requests": {"cpu": "1", "memory": "1Gi"}, "limits": {"memory": "2Gi"}},
            "autoscaling": {
                "enabled": True,
                "minReplicas": 3,
                "maxReplicas": 12,
                "targetCPUUtilizationPercentage": 60,
                "metrics": [
                    {
                        "type": "External",
                        "external": {
                            "metric": {
                                "name": "k8sev_consumer_lag_records",
                                "selector": {"matchLabels": {"stage": "dedup"}},
                            },
                            "target": {"type": "AverageValue", "averageValue": "10000"},
                        },
                    }
                ],
            },
        },
    },
    "cluster": "prod-eu",
    # Both away from their defaults, and a combination the worker accepts (role=ingest needs ingest).
    "role": "streams",
    "ingest": False,
    "kafka": {
        "brokers": "kafka://k1:9093,kafka://k2:9093",
        "topic": "events",
        "topicPartitions": 12,
        "topicReplicas": 2,
        "securityProtocol": "SASL_SSL",
        "tls": {"existingSecret": "kafka-ca", "caKey": "ca.pem", "certKey": "client.pem", "keyKey": "client-key.pem"},
        "sasl": {
            "mechanism": "SCRAM-SHA-256",
            "username": "k8sev",
            "existingSecret": "kafka-user",
            "passwordKey": "pw",
        },
    },
    "search": {
        "engine": "opensearch",
        "url": "https://os-0:9200,https://os-1:9200",
        "username": "k8sev",
        "existingSecret": "os-user",
        "passwordKey": "password",
        "apiKeyKey": "",
        "tls": {"existingSecret": "os-ca", "caKey": "ca.crt", "certKey": "tls.crt", "keyKey": "tls.key"},
        "indexPrefix": "kube-events",
        "indexReplicas": 2,
        "retentionDays": 7,
    },
    "filters": {
        "namespaces": ["default", "prod"],
        "eventTypes": ["Warning"],
        "includeReasons": ["BackOff", "Failed"],
        "excludeReasons": ["Pulled"],
        "excludeNamespaces": ["kube-*", "ci"],
        "excludeKinds": ["Lease"],
        "excludeComponents": ["kubelet", "default-scheduler"],
        "excludeMessage": 'became leader$|^Container image ".*" already present',
    },
    "extraEnv": {"K8SEV_BULK_SIZE": "1000", "K8SEV_LEASE_DURATION": "20s"},
    "resources": {"requests": {"cpu": "200m", "memory": "512Mi"}, "limits": {"memory": "1Gi"}},
    "nodeSelector": {"pool": "infra"},
    "tolerations": [{"key": "dedicated", "operator": "Equal", "value": "infra", "effect": "NoSchedule"}],
    "podAnnotations": {"example.com/team": "platform"},
    "affinity": {
        "nodeAffinity": {
            "requiredDuringSchedulingIgnoredDuringExecution": {
                "nodeSelectorTerms": [{"matchExpressions": [{"key": "pool", "operator": "In", "values": ["infra"]}]}]
            }
        }
    },
    "topologySpreadConstraints": [
        {
            "maxSkew": 1,
            "topologyKey": "topology.kubernetes.io/zone",
            "whenUnsatisfiable": "ScheduleAnyway",
            "labelSelector": {"matchLabels": {"app.kubernetes.io/name": "k8s-event-streams"}},
        }
    ],
    "priorityClassName": "infra-critical",
    "podLabels": {"example.com/team": "platform"},
    "serviceAccount": {"annotations": {"eks.amazonaws.com/role-arn": "arn:aws:iam::111122223333:role/k8sev"}},
    "podSecurityContext": {"runAsNonRoot": True, "runAsUser": 2000, "runAsGroup": 2000, "fsGroup": 2000},
    "securityContext": {
        "allowPrivilegeEscalation": False,
        "readOnlyRootFilesystem": True,
        "runAsNonRoot": True,
        "capabilities": {"drop": ["ALL"]},
        "seccompProfile": {"type": "RuntimeDefault"},
    },
    "extraVolumes": [{"name": "extra-ca", "configMap": {"name": "corporate-ca"}}],
    "extraVolumeMounts": [{"name": "extra-ca", "mountPath": "/etc/ssl/corporate", "readOnly": True}],
    "service": {"port": 8080},
    "podDisruptionBudget": {"enabled": True, "maxUnavailable": 2},
    "serviceMonitor": {"enabled": True, "interval": "15s", "labels": {"release": "prometheus"}},
    "explorer": {
        "allowAnonymous": False,
        "auth": {"existingSecret": "explorer-auth", "tokenKey": "ui-token", "username": "ops", "passwordKey": "ui-pw"},
    },
    "networkPolicy": {
        "enabled": True,
        "allowedClients": [{"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "ingress-nginx"}}}],
        "prometheus": [
            {
                "namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "observability"}},
                "podSelector": {
                    "matchExpressions": [{"key": "app.kubernetes.io/name", "operator": "In", "values": ["prometheus"]}]
                },
            }
        ],
        "egress": {"enabled": True, "rules": [{"to": [{"ipBlock": {"cidr": "10.0.0.0/8"}}]}]},
    },
    "ingress": {
        "enabled": True,
        "className": "nginx",
        "annotations": {"nginx.ingress.kubernetes.io/ssl-redirect": "true"},
        "host": "events.example.com",
        "path": "/ui",
        "tls": [{"secretName": "events-tls", "hosts": ["events.example.com"]}],
    },
    "prometheusRule": {
        "enabled": True,
        "labels": {"release": "prometheus"},
        "runbookBaseUrl": "https://git.example.com/ops/k8s-event-streams/-/blob/main/docs/runbooks.md",
    },
    "grafanaDashboard": {"enabled": True, "labels": {"grafana_dashboard": "1"}},
}


@pytest.fixture(scope="module")
def rendered() -> list[dict[str, Any]]:
    return helm_template(CHART_DIR, RELEASE, NAMESPACE)


@pytest.fixture(scope="module")
def all_options(tmp_path_factory: pytest.TempPathFactory) -> list[dict[str, Any]]:
    values = values_file(tmp_path_factory.mktemp("values"), ALL_OPTIONS)
    return helm_template(CHART_DIR, RELEASE, NAMESPACE, values=values)


def container(objects: list[dict[str, Any]]) -> dict[str, Any]:
    (worker,) = find(objects, "Deployment")["spec"]["template"]["spec"]["containers"]
    result: dict[str, Any] = worker
    return result


def worker_environment(objects: list[dict[str, Any]]) -> dict[str, str]:
    """What the worker's process sees: the ConfigMap (envFrom) overlaid by the literal env entries."""
    worker = container(objects)
    (source,) = worker["envFrom"]
    config_map = find(objects, "ConfigMap", source["configMapRef"]["name"])
    literal = {e["name"]: e["value"] for e in worker["env"] if "value" in e and "$(" not in e["value"]}
    return {**config_map["data"], **literal}


def k8sev_names(objects: list[dict[str, Any]]) -> set[str]:
    names = set(worker_environment(objects)) | {e["name"] for e in container(objects)["env"]}
    return {n for n in names if n.startswith("K8SEV_")}


# --- helm lint and helm template -----------------------------------------------------------------


#: Values the chart gained after 0.1.0.
ADDED_AFTER_0_1_0 = (
    "global",
    "topology",
    "split",
    "affinity",
    "topologySpreadConstraints",
    "priorityClassName",
    "podLabels",
    "serviceAccount",
    "podSecurityContext",
    "securityContext",
    "persistence",
    "extraVolumes",
    "extraVolumeMounts",
    "prometheusRule",
)


def test_an_upgrade_with_reuse_values_from_0_1_0_renders_the_same_objects(
    tmp_path: Path, rendered: list[dict[str, Any]]
) -> None:
    """``helm upgrade --reuse-values`` renders the new templates with the old release's values in
    place of the new chart's defaults: every value added since must fall back to what 0.1.0 did."""
    chart = tmp_path / "chart"
    shutil.copytree(CHART_DIR, chart)
    values = load_yaml(CHART_DIR / "values.yaml")
    for key in ADDED_AFTER_0_1_0:
        del values[key]
    (chart / "values.yaml").write_text(yaml.safe_dump(values))
    # No topology among 0.1.0's values: the one Deployment 0.1.0 rendered.
    old = render_chart(chart, RELEASE, NAMESPACE)
    assert [(o["kind"], o["metadata"]["name"]) for o in old] == [(o["kind"], o["metadata"]["name"]) for o in rendered]
    assert find(old, "Deployment")["spec"] == find(rendered, "Deployment")["spec"]
    assert find(old, "ServiceAccount") == find(rendered, "ServiceAccount")


def test_the_fallbacks_of_the_templates_are_the_defaults_of_the_values() -> None:
    values = load_yaml(CHART_DIR / "values.yaml")
    helpers = (CHART_DIR / "templates" / "_helpers.tpl").read_text()
    for name in ("podSecurityContext", "securityContext"):
        body = helpers.split(f'{{{{- define "k8sev.{name}" -}}}}', 1)[1].split("{{- end -}}", 1)[0]
        assert yaml.safe_load(body) == values[name], name
    assert values["persistence"]["type"] == "emptyDir" and values["persistence"]["size"] == "1Gi"


def volume(objects: list[dict[str, Any]], name: str) -> dict[str, Any]:
    pod = find(objects, "Deployment")["spec"]["template"]["spec"]
    (found,) = [v for v in pod["volumes"] if v["name"] == name]
    return dict(found)


def test_the_data_directory_is_an_emptydir_of_the_given_size_or_a_claim_per_pod() -> None:
    assert volume(helm_template(CHART_DIR, RELEASE, NAMESPACE), "data") == {
        "name": "data",
        "emptyDir": {"sizeLimit": "1Gi"},
    }
    bigger = helm_template(CHART_DIR, RELEASE, NAMESPACE, set_strings=("persistence.size=8Gi",))
    assert volume(bigger, "data")["emptyDir"] == {"sizeLimit": "8Gi"}
    sets = ("persistence.type=ephemeral", "persistence.size=20Gi", "persistence.storageClassName=fast")
    claim = volume(helm_template(CHART_DIR, RELEASE, NAMESPACE, set_strings=sets), "data")["ephemeral"]
    spec = claim["volumeClaimTemplate"]["spec"]
    assert spec == {
        "accessModes": ["ReadWriteOnce"],
        "storageClassName": "fast",
        "resources": {"requests": {"storage": "20Gi"}},
    }
    with pytest.raises(ToolError, match="persistence"):
        helm_template(CHART_DIR, RELEASE, NAMESPACE, set_strings=("persistence.type=hostPath",))


def test_the_default_affinity_spreads_the_workers_and_openshift_can_drop_the_fixed_ids() -> None:
    pod = find(helm_template(CHART_DIR, RELEASE, NAMESPACE), "Deployment")["spec"]["template"]["spec"]
    (term,) = pod["affinity"]["podAntiAffinity"]["preferredDuringSchedulingIgnoredDuringExecution"]
    assert term["podAffinityTerm"]["topologyKey"] == "kubernetes.io/hostname"
    assert pod["securityContext"]["runAsUser"] == 10001 and "priorityClassName" not in pod
    # OpenShift's restricted SCC assigns the UID and group from the namespace's range.
    sets = tuple(f"podSecurityContext.{key}=null" for key in ("runAsUser", "runAsGroup", "fsGroup"))
    pod = find(helm_template(CHART_DIR, RELEASE, NAMESPACE, sets=sets), "Deployment")["spec"]["template"]["spec"]
    assert pod["securityContext"] == {"runAsNonRoot": True, "seccompProfile": {"type": "RuntimeDefault"}}


def test_helm_lint_strict_passes_with_default_and_all_options(tmp_path: Path) -> None:
    helm("lint", "--strict", str(CHART_DIR))
    helm("lint", "--strict", str(CHART_DIR), "--values", str(values_file(tmp_path, ALL_OPTIONS)))
    split = {**ALL_OPTIONS, "topology": "split", "role": "all", "ingest": True}
    helm("lint", "--strict", str(CHART_DIR), "--values", str(values_file(tmp_path, split)))


def test_the_default_rendering_holds_what_k8s_holds_but_the_namespace(rendered: list[dict[str, Any]]) -> None:
    kinds = sorted((o["kind"], o["metadata"]["name"]) for o in rendered)
    assert kinds == sorted(
        [
            ("ServiceAccount", FULLNAME),
            ("ClusterRole", f"{FULLNAME}-events-reader"),
            ("ClusterRoleBinding", f"{FULLNAME}-events-reader"),
            ("Role", f"{FULLNAME}-lease"),
            ("RoleBinding", f"{FULLNAME}-lease"),
            ("ConfigMap", FULLNAME),
            ("ConfigMap", f"{FULLNAME}-dashboard"),
            ("Deployment", FULLNAME),
            ("PodDisruptionBudget", FULLNAME),
            ("Service", FULLNAME),
            ("NetworkPolicy", FULLNAME),
        ]
    )
    # The same kinds as k8s/, less the Namespace (Helm installs into one), plus the dashboard.
    ours = {o["kind"] for o in kustomize_build(K8S_DIR)} - {"Namespace"}
    assert ours == {o["kind"] for o in rendered}
    for obj in rendered:
        if obj["kind"] not in CLUSTER_SCOPED:
            assert obj["metadata"]["namespace"] == NAMESPACE
    assert "K8SEV_ROLE" not in worker_environment(rendered), "role `all` sets nothing"


def mounted_here(objects: list[dict[str, Any]], root: Path) -> dict[str, str]:
    """The worker's environment with its Secret volumes laid out under ``root`` (files hold dummy text)."""
    worker = container(objects)
    volumes = {v["name"]: v for v in find(objects, "Deployment")["spec"]["template"]["spec"]["volumes"]}
    moved = {}
    for mount in worker["volumeMounts"]:
        secret = volumes[mount["name"]].get("secret")
        if secret is None:
            continue
        target = root / mount["mountPath"].lstrip("/")
        target.mkdir(parents=True)
        for item in secret["items"]:
            (target / item["path"]).write_text(f"{secret['secretName']}/{item['key']}\n")
        moved[mount["mountPath"]] = str(target)
    environment = {}
    for name, value in worker_environment(objects).items():
        for mount_path, target_path in moved.items():
            if value.startswith(mount_path + "/"):
                value = target_path + value.removeprefix(mount_path)
        environment[name] = value
    return environment


def test_every_setting_the_chart_renders_is_one_the_worker_reads(
    rendered: list[dict[str, Any]], all_options: list[dict[str, Any]], tmp_path: Path
) -> None:
    known = set(defaults())
    for number, objects in enumerate((rendered, all_options)):
        assert k8sev_names(objects) <= known, sorted(k8sev_names(objects) - known)
        environment = mounted_here(objects, tmp_path / str(number))
        # Every value valid and every file it names mounted, or SettingsError lists them all.
        Settings.from_env(environment)
        assert not {n for n in environment if n.endswith(("PASSWORD", "API_KEY", "TOKEN"))}


def test_all_options_reach_the_worker_and_the_cluster(all_options: list[dict[str, Any]]) -> None:
    environment = worker_environment(all_options)
    assert {
        "K8SEV_ROLE": "streams",
        "K8SEV_INGEST": "false",
        "K8SEV_CLUSTER": "prod-eu",
        "K8SEV_BROKER": "kafka://k1:9093,kafka://k2:9093",
        "K8SEV_TOPIC": "events",
        "K8SEV_TOPIC_PARTITIONS": "12",
        "K8SEV_TOPIC_REPLICAS": "2",
        "K8SEV_KAFKA_SECURITY_PROTOCOL": "SASL_SSL",
        "K8SEV_KAFKA_SASL_MECHANISM": "SCRAM-SHA-256",
        "K8SEV_KAFKA_USERNAME": "k8sev",
        "K8SEV_SEARCH_ENGINE": "opensearch",
        "K8SEV_ES_URL": "https://os-0:9200,https://os-1:9200",
        "K8SEV_ES_USERNAME": "k8sev",
        "K8SEV_INDEX_PREFIX": "kube-events",
        "K8SEV_INDEX_REPLICAS": "2",
        "K8SEV_RETENTION_DAYS": "7",
        "K8SEV_NAMESPACES": "default,prod",
        "K8SEV_EVENT_TYPES": "Warning",
        "K8SEV_INCLUDE_REASONS": "BackOff,Failed",
        "K8SEV_EXCLUDE_REASONS": "Pulled",
        "K8SEV_EXCLUDE_NAMESPACES": "kube-*,ci",
        "K8SEV_EXCLUDE_KINDS": "Lease",
        "K8SEV_EXCLUDE_COMPONENTS": "kubelet,default-scheduler",
        "K8SEV_EXCLUDE_MESSAGE": 'became leader$|^Container image ".*" already present',
        "K8SEV_BULK_SIZE": "1000",
        "K8SEV_LEASE_DURATION": "20s",
        "K8SEV_EXPLORER_USERNAME": "ops",
        "K8SEV_EXPLORER_AUTH": "token",
    }.items() <= environment.items()
    # Every *_FILE setting names a file a Secret volume puts there, under the key the values chose.
    worker = container(all_options)
    pod = find(all_options, "Deployment")["spec"]["template"]["spec"]
    volumes = {v["name"]: v for v in pod["volumes"]}
    mounts = {m["mountPath"]: m["name"] for m in worker["volumeMounts"]}
    files = {
        "K8SEV_KAFKA_CA_FILE": ("kafka-ca", "ca.pem"),
        "K8SEV_KAFKA_CERT_FILE": ("kafka-ca", "client.pem"),
        "K8SEV_KAFKA_KEY_FILE": ("kafka-ca", "client-key.pem"),
        "K8SEV_KAFKA_PASSWORD_FILE": ("kafka-user", "pw"),
        "K8SEV_ES_PASSWORD_FILE": ("os-user", "password"),
        "K8SEV_ES_CA_CERTS": ("os-ca", "ca.crt"),
        "K8SEV_ES_CLIENT_CERT": ("os-ca", "tls.crt"),
        "K8SEV_ES_CLIENT_KEY": ("os-ca", "tls.key"),
        "K8SEV_EXPLORER_TOKEN_FILE": ("explorer-auth", "ui-token"),
        "K8SEV_EXPLORER_PASSWORD_FILE": ("explorer-auth", "ui-pw"),
    }
    for variable, (secret_name, key) in files.items():
        path = Path(environment[variable])
        secret = volumes[mounts[str(path.parent)]]["secret"]
        assert secret["secretName"] == secret_name
        assert {"key": key, "path": path.name} in secret["items"], variable
    secret_mounts = [m for m in worker["volumeMounts"] if "secret" in volumes[m["name"]]]
    assert len(secret_mounts) == 5 and all(m.get("readOnly") for m in secret_mounts)
    # The cluster-facing options.
    deployment = find(all_options, "Deployment")
    assert deployment["spec"]["replicas"] == 3
    assert worker["image"] == "registry.example.com/k8s-event-streams:9.9.9"
    assert worker["resources"] == ALL_OPTIONS["resources"]
    assert pod["nodeSelector"] == {"pool": "infra"} and pod["tolerations"] == ALL_OPTIONS["tolerations"]
    assert pod["imagePullSecrets"] == [{"name": "regcred"}]
    assert deployment["spec"]["template"]["metadata"]["annotations"]["example.com/team"] == "platform"
    assert find(all_options, "PodDisruptionBudget")["spec"]["maxUnavailable"] == 2
    service = find(all_options, "Service")
    monitor = find(all_options, "ServiceMonitor")
    assert monitor["metadata"]["labels"]["release"] == "prometheus"
    assert monitor["spec"]["selector"]["matchLabels"].items() <= service["metadata"]["labels"].items()
    assert monitor["spec"]["endpoints"] == [{"port": "web", "path": "/metrics", "interval": "15s"}]
    policy = find(all_options, "NetworkPolicy")["spec"]
    assert policy["ingress"][1]["from"] == ALL_OPTIONS["networkPolicy"]["allowedClients"]
    assert policy["ingress"][2]["from"] == ALL_OPTIONS["networkPolicy"]["prometheus"]
    assert policy["egress"][2:] == ALL_OPTIONS["networkPolicy"]["egress"]["rules"]
    ingress = find(all_options, "Ingress")
    assert ingress["spec"]["ingressClassName"] == "nginx"
    (rule,) = ingress["spec"]["rules"]
    assert rule["host"] == "events.example.com"
    (path,) = rule["http"]["paths"]
    assert path["path"] == "/ui" and path["pathType"] == "Prefix"
    assert path["backend"]["service"] == {"name": service["metadata"]["name"], "port": {"name": "web"}}
    assert service["spec"]["ports"] == [{"name": "web", "port": 8080, "targetPort": "web", "protocol": "TCP"}]
    assert ingress["spec"]["tls"] == ALL_OPTIONS["ingress"]["tls"]
    assert pod["affinity"] == ALL_OPTIONS["affinity"]
    assert pod["topologySpreadConstraints"] == ALL_OPTIONS["topologySpreadConstraints"]
    assert pod["priorityClassName"] == "infra-critical"
    # Merged over the defaults: what is not overridden stays.
    assert pod["securityContext"] == {**ALL_OPTIONS["podSecurityContext"], "seccompProfile": {"type": "RuntimeDefault"}}
    assert worker["securityContext"] == ALL_OPTIONS["securityContext"]
    assert {"name": "extra-ca", "configMap": {"name": "corporate-ca"}} in pod["volumes"]
    assert ALL_OPTIONS["extraVolumeMounts"][0] in worker["volumeMounts"]
    labels = deployment["spec"]["template"]["metadata"]["labels"]
    assert labels["example.com/team"] == "platform"
    assert "example.com/team" not in deployment["spec"]["selector"]["matchLabels"]
    account = find(all_options, "ServiceAccount")
    assert account["metadata"]["annotations"] == ALL_OPTIONS["serviceAccount"]["annotations"]
    rules = find(all_options, "PrometheusRule")
    assert rules["metadata"]["labels"]["release"] == "prometheus"
    first = rules["spec"]["groups"][0]["rules"][0]["annotations"]["runbook_url"]
    assert first.startswith(ALL_OPTIONS["prometheusRule"]["runbookBaseUrl"] + "#")


def test_an_api_key_from_a_secret_is_a_file_for_the_worker() -> None:
    objects = helm_template(
        CHART_DIR, RELEASE, NAMESPACE, set_strings=("search.existingSecret=es-key", "search.apiKeyKey=key")
    )
    environment = worker_environment(objects)
    assert environment["K8SEV_ES_API_KEY_FILE"] == "/etc/k8s-event-streams/search-credentials/api-key"
    assert "K8SEV_ES_PASSWORD_FILE" not in environment
    volumes = find(objects, "Deployment")["spec"]["template"]["spec"]["volumes"]
    (secret,) = [v["secret"] for v in volumes if "secret" in v]
    assert secret["secretName"] == "es-key" and secret["items"] == [{"key": "key", "path": "api-key"}]


def _explorer_for(objects: list[dict[str, Any]], root: Path) -> Explorer:
    """The explorer the rendered worker would serve, its Secret files holding ``<secret>/<key>``."""

    async def nothing(*args: Any, **kwargs: Any) -> dict[str, Any]:
        raise AssertionError("no search in this test")

    searcher = type("Searcher", (), {"search": nothing})()
    return Explorer(Settings.from_env(mounted_here(objects, root)).explorer, searcher, "k8s-event-*", nothing)


def _basic(user: str, password: str) -> str:
    return "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()


def test_explorer_auth_from_a_secret_makes_the_worker_demand_it(tmp_path: Path) -> None:
    default = Settings.from_env(mounted_here(helm_template(CHART_DIR, RELEASE, NAMESPACE), tmp_path / "default"))
    assert default.explorer.mode == "kubernetes"
    anonymous = helm_template(CHART_DIR, RELEASE, NAMESPACE, sets=("explorer.allowAnonymous=true",))
    open_page = _explorer_for(anonymous, tmp_path / "anonymous")
    assert open_page.authorized(None)

    token = ("explorer.auth.existingSecret=ui", "explorer.auth.tokenKey=token")
    by_token = _explorer_for(helm_template(CHART_DIR, RELEASE, NAMESPACE, set_strings=token), tmp_path / "token")
    assert not by_token.authorized(None) and not by_token.authorized("Bearer guess")
    assert by_token.authorized("Bearer ui/token")  # the Secret's file, as mounted_here wrote it

    basic = ("explorer.auth.existingSecret=ui", "explorer.auth.username=ops", "explorer.auth.passwordKey=pw")
    objects = helm_template(CHART_DIR, RELEASE, NAMESPACE, set_strings=basic)
    by_user = _explorer_for(objects, tmp_path / "basic")
    assert not by_user.authorized(None) and not by_user.authorized(_basic("ops", "guess"))
    assert by_user.authorized(_basic("ops", "ui/pw"))
    # The token and the password are files from the Secret, never values in the environment.
    environment = worker_environment(objects)
    assert environment["K8SEV_EXPLORER_PASSWORD_FILE"] == "/etc/k8s-event-streams/explorer-auth/password"
    assert not {"K8SEV_EXPLORER_TOKEN", "K8SEV_EXPLORER_PASSWORD"} & set(environment)
    volumes = find(objects, "Deployment")["spec"]["template"]["spec"]["volumes"]
    (secret,) = [v["secret"] for v in volumes if "secret" in v]
    assert secret["secretName"] == "ui" and secret["items"] == [{"key": "pw", "path": "password"}]


def test_the_dashboard_config_map_is_the_dashboard_for_the_sidecar(rendered: list[dict[str, Any]]) -> None:
    config_map = find(rendered, "ConfigMap", f"{FULLNAME}-dashboard")
    assert config_map["metadata"]["labels"]["grafana_dashboard"] == "1"
    shipped = json.loads((CHART_DIR / "dashboards" / "k8s-event-streams.json").read_text())
    assert json.loads(config_map["data"]["k8s-event-streams.json"]) == shipped


@pytest.mark.parametrize(
    "setting",
    [
        "replica=3",  # top level
        "kafka.brokerz=kafka://x:9092",
        "search.tls.caFile=ca.crt",
        "ingress.hostname=x.example.com",
        "serviceMonitor.enable=true",
        "explorer.auth.token=x",
    ],
)
def test_a_misspelt_value_fails_template_and_lint(setting: str) -> None:
    key = setting.split("=")[0].rsplit(".", 1)[-1]
    with pytest.raises(ToolError, match=f"additional properties '{key}' not allowed"):
        helm_template(CHART_DIR, RELEASE, NAMESPACE, sets=(setting,))
    with pytest.raises(ToolError, match=f"additional properties '{key}' not allowed"):
        helm("lint", "--strict", str(CHART_DIR), "--set", setting)


@pytest.mark.parametrize(
    ("setting", "message"),
    [
        ("kafka.securityProtocol=SASL_SSL", "kafka.sasl"),
        ("extraEnv.K8SEV_ES_PASSWORD=hunter2", "secrets come from an existing Secret"),
        ("extraEnv.K8SEV_CLUSTER=other", "the chart sets K8SEV_CLUSTER itself"),
        ("extraEnv.K8SEV_WEB_PORT=1", "the chart sets K8SEV_WEB_PORT itself"),
        ("extraEnv.KAFKA_BROKER=x", "extraEnv"),
        ("kafka.securityProtocol=TLS", "securityProtocol"),
        ("search.indexPrefix=Upper", "indexPrefix"),
        ("search.passwordKey=password", "search.existingSecret"),
        ("search.existingSecret=s,search.apiKeyKey=k,search.username=u", "search.username"),
        ("extraEnv.K8SEV_EXPLORER_TOKEN=t", "secrets come from an existing Secret"),
        ("extraEnv.K8SEV_EXPLORER_PASSWORD=pw", "secrets come from an existing Secret"),
        ("extraEnv.K8SEV_EXPLORER_TOKEN_FILE=/t", "the chart sets K8SEV_EXPLORER_TOKEN_FILE itself"),
        ("explorer.auth.existingSecret=s", "name explorer.auth.tokenKey and/or explorer.auth.passwordKey"),
        ("explorer.auth.tokenKey=token", "explorer.auth.existingSecret"),
        ("explorer.auth.existingSecret=s,explorer.auth.passwordKey=pw", "explorer.auth.username and"),
        ("explorer.auth.existingSecret=s,explorer.auth.tokenKey=t,explorer.auth.username=u", "passwordKey go together"),
        ("podLabels.app\\.kubernetes\\.io/instance=x", "podLabels.app.kubernetes.io/instance: the chart sets"),
    ],
)
def test_inconsistent_values_fail_with_the_key_named(setting: str, message: str) -> None:
    sets = (setting, "kafka.sasl.username=u") if "SASL" in setting else (setting,)
    with pytest.raises(ToolError, match=message):
        helm_template(CHART_DIR, RELEASE, NAMESPACE, set_strings=sets)


ROLE_REFUSED = "role=ingest with ingest=false: an ingest-only worker that never takes the ingest Lease does nothing"


@pytest.mark.parametrize("role", ["all", "ingest", "streams"])
@pytest.mark.parametrize("ingest", ["true", "false"])
def test_the_chart_refuses_exactly_the_roles_the_worker_refuses(role: str, ingest: str) -> None:
    sets = (f"role={role}", f"ingest={ingest}")
    try:
        Settings.from_env({"K8SEV_ROLE": role, "K8SEV_INGEST": ingest})
    except SettingsError:
        with pytest.raises(ToolError, match=ROLE_REFUSED):
            helm_template(CHART_DIR, RELEASE, NAMESPACE, sets=sets)
        return
    stages = Settings.from_env(worker_environment(helm_template(CHART_DIR, RELEASE, NAMESPACE, sets=sets))).stages
    assert (stages.role, stages.ingest) == (role, ingest == "true")


# --- Helm and kustomize agree ---------------------------------------------------------------------


def _sorted_rules(rules: list[dict[str, Any]]) -> list[dict[str, Any]]:
    normal = [{k: sorted(v) for k, v in rule.items()} for rule in rules]
    return sorted(normal, key=lambda r: json.dumps(r, sort_keys=True))


def _abstract_selectors(node: Any, selects: Any) -> Any:
    """``node`` with every ``matchLabels`` replaced by whether it selects the worker pods."""
    if isinstance(node, dict):
        return {k: selects(v) if k == "matchLabels" else _abstract_selectors(v, selects) for k, v in node.items()}
    if isinstance(node, list):
        return [_abstract_selectors(v, selects) for v in node]
    return node


def security_view(objects: list[dict[str, Any]]) -> dict[str, Any]:
    """Every field that decides what the worker may do and how locked down it runs, names abstracted."""
    account = find(objects, "ServiceAccount")["metadata"]
    cluster_role, role = find(objects, "ClusterRole"), find(objects, "Role")
    deployment = find(objects, "Deployment")
    template = deployment["spec"]["template"]
    pod = template["spec"]
    (worker,) = pod["containers"]
    pod_labels = template["metadata"]["labels"]

    def is_account(subject: dict[str, Any]) -> bool:
        return (subject["name"], subject.get("namespace")) == (account["name"], account["namespace"])

    def binding(kind: str, bound: dict[str, Any]) -> dict[str, Any]:
        obj = find(objects, kind)
        return {
            "roleRef": {**obj["roleRef"], "name": obj["roleRef"]["name"] == bound["metadata"]["name"]},
            "subjects": [{"kind": s["kind"], "is its ServiceAccount": is_account(s)} for s in obj["subjects"]],
        }

    def selects(selector: dict[str, str]) -> bool:
        return bool(selector) and selector.items() <= pod_labels.items()

    service = find(objects, "Service")
    budget = find(objects, "PodDisruptionBudget")
    policy = find(objects, "NetworkPolicy")["spec"]
    return {
        "cluster role rules": _sorted_rules(cluster_role["rules"]),
        "role rules": _sorted_rules(role["rules"]),
        "role in the worker's namespace": role["metadata"]["namespace"] == account["namespace"],
        "cluster role binding": binding("ClusterRoleBinding", cluster_role),
        "role binding": binding("RoleBinding", role),
        "runs as its ServiceAccount": pod["serviceAccountName"] == account["name"],
        "automountServiceAccountToken": pod.get("automountServiceAccountToken"),
        "host namespaces": {k: pod.get(k) for k in ("hostNetwork", "hostPID", "hostIPC", "hostUsers")},
        "pod securityContext": pod["securityContext"],
        "container securityContext": worker["securityContext"],
        "terminationGracePeriodSeconds": pod["terminationGracePeriodSeconds"],
        "volumes": pod["volumes"],
        "volumeMounts": worker["volumeMounts"],
        "probes": {p: worker[p] for p in ("startupProbe", "livenessProbe", "readinessProbe")},
        "resources": worker["resources"],
        "ports": worker["ports"],
        "args": worker.get("args"),
        "command": worker.get("command"),
        "env": worker["env"],
        "imagePullPolicy": worker["imagePullPolicy"],
        "replicas": deployment["spec"]["replicas"],
        "strategy": deployment["spec"]["strategy"],
        "affinity": _abstract_selectors(pod["affinity"], selects),
        "deployment selects its pods": selects(deployment["spec"]["selector"]["matchLabels"]),
        "service": {"type": service["spec"]["type"], "ports": service["spec"]["ports"]},
        "service selects the pods": selects(service["spec"]["selector"]),
        "budget": budget["spec"]["maxUnavailable"],
        "budget selects the pods": selects(budget["spec"]["selector"]["matchLabels"]),
        "network policy selects the pods": selects(policy["podSelector"]["matchLabels"]),
        "network policy": {k: v for k, v in policy.items() if k != "podSelector"},
    }


def test_helm_and_kustomize_agree_on_every_security_relevant_field(rendered: list[dict[str, Any]]) -> None:
    ours = security_view(kustomize_build(K8S_DIR))
    chart = security_view(rendered)
    assert {k: v for k, v in chart.items() if ours[k] != v} == {}
    assert ours == chart


def test_helm_and_kustomize_scrape_the_same_endpoint() -> None:
    chart = find(helm_template(CHART_DIR, RELEASE, NAMESPACE, sets=("serviceMonitor.enabled=true",)), "ServiceMonitor")
    component = load_yaml(K8S_DIR / "components" / "servicemonitor" / "servicemonitor.yaml")
    assert chart["spec"]["endpoints"] == component["spec"]["endpoints"]


def test_helm_and_kustomize_route_the_same_explorer_path() -> None:
    objects = helm_template(CHART_DIR, RELEASE, NAMESPACE, sets=("ingress.enabled=true", "networkPolicy.enabled=false"))
    ((chart,),) = [rule["http"]["paths"] for rule in find(objects, "Ingress")["spec"]["rules"]]
    ((component,),) = [
        rule["http"]["paths"]
        for rule in load_yaml(K8S_DIR / "components" / "explorer" / "ingress.yaml")["spec"]["rules"]
    ]
    # /ui, not /ui/: a Prefix of /ui/ would never pass /ui itself on to the worker's redirect.
    assert (chart["path"], chart["pathType"]) == (component["path"], component["pathType"]) == ("/ui", "Prefix")
    assert chart["backend"]["service"]["port"] == component["backend"]["service"]["port"] == {"name": "web"}


def test_by_default_helm_and_kustomize_configure_the_same_worker(rendered: list[dict[str, Any]]) -> None:
    # Both set K8SEV_IDENTITY to $(POD_NAME), which only the kubelet expands.
    pod = {"K8SEV_IDENTITY": "the-pod"}
    assert Settings.from_env({**worker_environment(rendered), **pod}) == Settings.from_env(
        {**worker_environment(kustomize_build(K8S_DIR)), **pod}
    )


def test_the_security_comparison_sees_a_difference(rendered: list[dict[str, Any]]) -> None:
    loosened = copy.deepcopy(rendered)
    container(loosened)["securityContext"]["readOnlyRootFilesystem"] = False
    find(loosened, "ClusterRole")["rules"][0]["verbs"].append("create")
    find(loosened, "NetworkPolicy")["spec"]["ingress"][0]["from"] = [{"namespaceSelector": {}}]
    view = security_view(loosened)
    ours = security_view(kustomize_build(K8S_DIR))
    assert {k for k in view if view[k] != ours[k]} == {
        "container securityContext",
        "cluster role rules",
        "network policy",
    }


# --- the chart's README and docs/deploy.md -------------------------------------------------------


def _values_table_script() -> ModuleType:
    spec = importlib.util.spec_from_file_location("helm_values_table", ROOT / "scripts" / "helm_values_table.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules.setdefault(spec.name, module)
    spec.loader.exec_module(module)
    return module


def test_the_readme_values_table_is_generated_from_the_schema_and_defaults() -> None:
    script = _values_table_script()
    readme = (CHART_DIR / "README.md").read_text()
    assert script.render(readme, script.table()) == readme, "run: python scripts/helm_values_table.py"
    schema = json.loads((CHART_DIR / "values.schema.json").read_text())
    keys = [key for key, _ in script.leaves(schema)]
    for key in keys:
        assert f"| `{key}` |" in readme
    # Every default in values.yaml is a row (the schema lists them all, lint proves no extra ones).
    values = load_yaml(CHART_DIR / "values.yaml")

    def flat(node: dict[str, Any], prefix: str = "") -> set[str]:
        out: set[str] = set()
        for name, value in node.items():
            key = f"{prefix}{name}"
            is_map = isinstance(value, dict) and value and f"{key}." in " ".join(keys)
            out |= flat(value, f"{key}.") if is_map else {key}
        return out

    assert flat(values) == set(keys)


def test_the_deploy_doc_shows_the_helm_path() -> None:
    doc = DEPLOY_DOC.read_text()
    for command in ("helm install", "helm upgrade", "helm uninstall", "k8s/helm/k8s-event-streams"):
        assert command in doc


# --- on the real API server ----------------------------------------------------------------------


#: ``helm install`` arguments of the all-in-one layout (the chart's default is split).
ALL_IN_ONE = ("--set", "topology=allInOne")


def install(release: str, namespace: str, kubeconfig: str, *args: str) -> None:
    helm(
        "install",
        release,
        str(CHART_DIR),
        "--namespace",
        namespace,
        "--wait",
        "--timeout",
        "3m",
        *args,
        kubeconfig=kubeconfig,
        timeout=240,
    )


def manifest_objects(release: str, namespace: str, kubeconfig: str) -> list[dict[str, Any]]:
    return parse_objects(helm("get", "manifest", release, "--namespace", namespace, kubeconfig=kubeconfig))


@pytest.fixture
def release_namespace(namespace: str, kube_client: client.ApiClient, fake_node: str) -> str:
    """A fresh namespace that enforces the restricted Pod Security Standard, as docs/deploy.md says."""
    client.CoreV1Api(kube_client).patch_namespace(namespace, {"metadata": {"labels": RESTRICTED}})
    return namespace


@pytest.fixture
def release(release_namespace: str, kube_client: client.ApiClient, stack: dict[str, str]) -> Iterator[str]:
    """A release name; whatever the test left installed is uninstalled (cluster-scoped objects too)."""
    name = unique_name("ev")
    yield name
    with contextlib.suppress(ToolError):
        helm("uninstall", name, "--namespace", release_namespace, kubeconfig=stack["KUBECONFIG"])
    rbac = client.RbacAuthorizationV1Api(kube_client)
    for delete in (rbac.delete_cluster_role, rbac.delete_cluster_role_binding):
        with contextlib.suppress(ApiException):
            for suffix in ("events-reader", "reviewer"):
                delete(f"{name}-k8s-event-streams-{suffix}")


@pytest.mark.stack
@pytest.mark.slow
def test_helm_install_gives_the_least_privilege_and_restricted_pods(
    release: str,
    release_namespace: str,
    other_namespace: str,
    kube_client: client.ApiClient,
    stack: dict[str, str],
    tmp_path: Path,
) -> None:
    kubeconfig = stack["KUBECONFIG"]
    # A misspelt value stops `helm install` before anything is created.
    with pytest.raises(ToolError, match="additional properties 'replica' not allowed"):
        install(release, release_namespace, kubeconfig, "--set", "replica=3")
    # So does a role the worker would refuse at start-up.
    with pytest.raises(ToolError, match=ROLE_REFUSED):
        install(release, release_namespace, kubeconfig, *ALL_IN_ONE, "--set", "role=ingest", "--set", "ingest=false")
    assert helm("list", "--namespace", release_namespace, "--all", "--short", kubeconfig=kubeconfig).strip() == ""
    install(release, release_namespace, kubeconfig, *ALL_IN_ONE)
    objects = manifest_objects(release, release_namespace, kubeconfig)
    fullname = f"{release}-k8s-event-streams"
    apps = client.AppsV1Api(kube_client)
    assert apps.read_namespaced_deployment(fullname, release_namespace).status.available_replicas == 2
    core = client.CoreV1Api(kube_client)
    assert_restricted_pod_security(core, release_namespace, find(objects, "Deployment")["spec"]["template"])

    token = service_account_token(core, find(objects, "ServiceAccount")["metadata"]["name"], release_namespace)
    server, ca = admin_cluster(kubeconfig)
    ca_file = tmp_path / "ca.crt"
    ca_file.write_bytes(ca)
    sa = token_client(server, ca_file, token)
    try:
        assert_least_privilege(sa, release_namespace, other_namespace)
    finally:
        sa.close()


@pytest.mark.stack
def test_the_notes_warn_of_an_anonymous_explorer(stack: dict[str, str]) -> None:
    def notes(*sets: str) -> str:
        # A client-side dry run prints the notes; it asks the API server only for its version.
        args = [f"--set={item}" for item in sets]
        out = helm(
            "install",
            RELEASE,
            str(CHART_DIR),
            "--namespace",
            NAMESPACE,
            "--dry-run=client",
            *args,
            kubeconfig=stack["KUBECONFIG"],
        )
        return out.partition("NOTES:")[2]

    # Kubernetes auth by default, behind an Ingress too: no warning (tests/deploy/test_network_policy.py
    # renders every case of the notes without an API server).
    ingress = ("ingress.enabled=true", "networkPolicy.allowedClients[0].ipBlock.cidr=10.0.0.0/8")
    assert "port-forward" in notes() and "WARNING" not in notes() and "WARNING" not in notes(*ingress)
    exposed = notes(*ingress, "explorer.allowAnonymous=true")
    assert "WARNING: explorer.allowAnonymous=true" in exposed and "The Ingress exposes the explorer (/ui)" in exposed
    protected = (*ingress, "explorer.auth.existingSecret=ui", "explorer.auth.tokenKey=token")
    assert "WARNING" not in notes(*protected)


def _replica_sets(apps: client.AppsV1Api, namespace: str, release: str) -> dict[str, Any]:
    selector = f"app.kubernetes.io/instance={release},app.kubernetes.io/component=worker"
    return {rs.metadata.name: rs for rs in apps.list_namespaced_replica_set(namespace, label_selector=selector).items}


@pytest.mark.stack
@pytest.mark.slow
def test_helm_upgrade_rolls_the_pods_and_uninstall_leaves_nothing(
    release: str, release_namespace: str, kube_client: client.ApiClient, stack: dict[str, str]
) -> None:
    kubeconfig = stack["KUBECONFIG"]
    install(release, release_namespace, kubeconfig, *ALL_IN_ONE)
    fullname = f"{release}-k8s-event-streams"
    apps = client.AppsV1Api(kube_client)
    core = client.CoreV1Api(kube_client)
    before = apps.read_namespaced_deployment(fullname, release_namespace)
    (first,) = _replica_sets(apps, release_namespace, release)

    helm(
        "upgrade",
        release,
        str(CHART_DIR),
        "--namespace",
        release_namespace,
        "--reuse-values",
        "--set",
        "cluster=after-upgrade",
        "--wait",
        "--timeout",
        "3m",
        kubeconfig=kubeconfig,
        timeout=240,
    )
    config = core.read_namespaced_config_map(fullname, release_namespace)
    assert config.data["K8SEV_CLUSTER"] == "after-upgrade"
    after = apps.read_namespaced_deployment(fullname, release_namespace)
    checksum = "checksum/config"
    assert after.spec.template.metadata.annotations[checksum] != before.spec.template.metadata.annotations[checksum]

    def rolled() -> dict[str, Any] | None:
        sets = _replica_sets(apps, release_namespace, release)
        new = [rs for name, rs in sets.items() if name != first]
        done = len(new) == 1 and (new[0].status.ready_replicas or 0) == 2 and (sets[first].status.replicas or 0) == 0
        return sets if done else None

    wait.until(
        "a new ReplicaSet with two ready pods, the old one scaled to zero",
        rolled,
        timeout=120,
        not_yet=transient.kube,
    )

    # Everything the release made, then uninstall: none of it may remain (cluster-scoped included).
    made = manifest_objects(release, release_namespace, kubeconfig)
    assert {"ClusterRole", "ClusterRoleBinding", "Deployment", "ServiceAccount"} <= {o["kind"] for o in made}
    helm("uninstall", release, "--namespace", release_namespace, "--wait", kubeconfig=kubeconfig, timeout=240)
    dynamic = DynamicClient(kube_client)

    def remaining() -> list[str]:
        left = []
        for obj in made:
            resource = dynamic.resources.get(api_version=obj["apiVersion"], kind=obj["kind"])
            try:
                resource.get(name=obj["metadata"]["name"], namespace=obj["metadata"].get("namespace"))
            except NotFoundError:
                continue
            left.append(f"{obj['kind']}/{obj['metadata']['name']}")
        selector = f"app.kubernetes.io/instance={release}"
        left += [f"ReplicaSet/{n}" for n in _replica_sets(apps, release_namespace, release)]
        left += [
            f"Pod/{p.metadata.name}" for p in core.list_namespaced_pod(release_namespace, label_selector=selector).items
        ]
        left += [
            f"Secret/{s.metadata.name}"
            for s in core.list_namespaced_secret(release_namespace, label_selector=f"owner=helm,name={release}").items
        ]
        return left

    wait.until(
        "nothing of the release left",
        remaining,
        timeout=120,
        ready=lambda left: left == [],
        not_yet=transient.kube,
    )
    assert helm("list", "--namespace", release_namespace, "--short", kubeconfig=kubeconfig).strip() == ""


def test_enrichment_grants_list_and_watch_on_exactly_the_resources_it_watches() -> None:
    assert not any(
        o["metadata"]["name"].endswith("-metadata-reader") for o in helm_template(CHART_DIR, RELEASE, NAMESPACE)
    )
    objects = helm_template(
        CHART_DIR,
        RELEASE,
        NAMESPACE,
        sets=("enrich.enabled=true", "enrich.resources={v1/pods,apps/v1/replicasets,example.com/v1/widgets}"),
    )
    role = next(o for o in objects if o["kind"] == "ClusterRole" and o["metadata"]["name"].endswith("-metadata-reader"))
    granted = {
        (g, r, tuple(sorted(rule["verbs"])))
        for rule in role["rules"]
        for g in rule["apiGroups"]
        for r in rule["resources"]
    }
    assert granted == {
        ("", "pods", ("list", "watch")),
        ("apps", "replicasets", ("list", "watch")),
        ("example.com", "widgets", ("list", "watch")),
    }
    enrich = Settings.from_env(worker_environment(objects)).enrich
    assert enrich.enabled and enrich.resources == ("v1/pods", "apps/v1/replicasets", "example.com/v1/widgets")


# --- the split topology (the chart's default) ----------------------------------------------------

ROLE_LABEL = "k8s-event-streams.io/role"
INGEST, STREAMS = f"{FULLNAME}-ingest", f"{FULLNAME}-streams"


@pytest.fixture(scope="module")
def split_rendered() -> list[dict[str, Any]]:
    return render_chart(CHART_DIR, RELEASE, NAMESPACE)


REVIEWS = {
    ("authentication.k8s.io", "tokenreviews", "create"),
    ("authorization.k8s.io", "subjectaccessreviews", "create"),
}
EVENTS = {(g, "events", v) for g in ("", "events.k8s.io") for v in ("get", "list", "watch")}
LEASE = {("coordination.k8s.io", "leases", v) for v in ("get", "create", "update")}


def test_the_default_is_the_split_topology_with_an_account_per_role(split_rendered: list[dict[str, Any]]) -> None:
    assert load_yaml(CHART_DIR / "values.yaml")["topology"] == "split"
    assert sorted((o["kind"], o["metadata"]["name"]) for o in split_rendered) == sorted(
        [
            ("ServiceAccount", FULLNAME),
            ("ServiceAccount", STREAMS),
            ("ClusterRole", f"{FULLNAME}-events-reader"),
            ("ClusterRoleBinding", f"{FULLNAME}-events-reader"),
            ("ClusterRole", f"{FULLNAME}-reviewer"),
            ("ClusterRoleBinding", f"{FULLNAME}-reviewer"),
            ("Role", f"{FULLNAME}-lease"),
            ("RoleBinding", f"{FULLNAME}-lease"),
            ("ConfigMap", FULLNAME),
            ("ConfigMap", f"{FULLNAME}-dashboard"),
            ("Deployment", INGEST),
            ("Deployment", STREAMS),
            ("PodDisruptionBudget", INGEST),
            ("PodDisruptionBudget", STREAMS),
            ("Service", FULLNAME),
            ("Service", INGEST),
            ("NetworkPolicy", FULLNAME),
        ]
    )
    accounts = {
        d["metadata"]["name"]: d["spec"]["template"]["spec"]["serviceAccountName"]
        for d in split_rendered
        if d["kind"] == "Deployment"
    }
    # The ingest pods keep the all-in-one account (an upgrade keeps the Lease holder's bindings).
    assert accounts == {INGEST: FULLNAME, STREAMS: STREAMS}
    assert find(split_rendered, "Deployment", INGEST)["spec"]["replicas"] == 2
    assert find(split_rendered, "Deployment", STREAMS)["spec"]["replicas"] == 2


def test_each_role_gets_its_settings_and_the_same_lease(split_rendered: list[dict[str, Any]]) -> None:
    ingest = Settings.from_env(role_environment(split_rendered, INGEST))
    streams = Settings.from_env(role_environment(split_rendered, STREAMS))
    assert (ingest.stages.role, ingest.runs_ingest, ingest.runs_streams) == ("ingest", True, False)
    assert (streams.stages.role, streams.runs_ingest, streams.runs_streams) == ("streams", False, True)
    # The explorer reads the count tables: the streams pods serve it, and only they are behind the Service.
    assert (ingest.explorer.enabled, streams.explorer.enabled) == (False, True)
    all_in_one = Settings.from_env(
        {**worker_environment(helm_template(CHART_DIR, RELEASE, NAMESPACE)), "K8SEV_IDENTITY": "p"}
    )
    assert ingest.lease.name == all_in_one.lease.name == "k8s-event-streams-ingest"
    assert ingest.lease.namespace == all_in_one.lease.namespace
    ingest_env = role_environment(split_rendered, INGEST)
    assert {k: v for k, v in ingest_env.items() if k.startswith("K8SEV_LEASE")} == {}


def test_the_streams_account_gets_no_events_and_no_lease(split_rendered: list[dict[str, Any]]) -> None:
    assert granted_rules(split_rendered, STREAMS) == REVIEWS
    assert granted_rules(split_rendered, FULLNAME) == EVENTS | LEASE
    # A shared token (or none) needs no reviews: the streams account then gets nothing at all.
    token = render_chart(
        CHART_DIR, RELEASE, NAMESPACE, set_strings=("explorer.auth.existingSecret=ui", "explorer.auth.tokenKey=token")
    )
    assert granted_rules(token, STREAMS) == set()
    enriched = render_chart(CHART_DIR, RELEASE, NAMESPACE, sets=("enrich.enabled=true", "enrich.resources={v1/pods}"))
    assert granted_rules(enriched, FULLNAME) == EVENTS | LEASE | {("", "pods", "list"), ("", "pods", "watch")}
    assert granted_rules(enriched, STREAMS) == REVIEWS
    assert Settings.from_env(role_environment(enriched, INGEST)).enrich.enabled
    # All-in-one: one account with everything, as in 0.1.0.
    assert granted_rules(helm_template(CHART_DIR, RELEASE, NAMESPACE), FULLNAME) == EVENTS | LEASE | REVIEWS


def test_each_split_deployment_selects_only_its_pods_and_the_workers_reach_each_other(
    split_rendered: list[dict[str, Any]],
) -> None:
    labels = {
        name: find(split_rendered, "Deployment", name)["spec"]["template"]["metadata"]["labels"]
        for name in (INGEST, STREAMS)
    }
    assert (labels[INGEST][ROLE_LABEL], labels[STREAMS][ROLE_LABEL]) == ("ingest", "streams")

    def selected(selector: dict[str, str]) -> set[str]:
        return {name for name, pod in labels.items() if selector.items() <= pod.items()}

    for name in (INGEST, STREAMS):
        deployment = find(split_rendered, "Deployment", name)
        assert selected(deployment["spec"]["selector"]["matchLabels"]) == {name}
        assert selected(find(split_rendered, "PodDisruptionBudget", name)["spec"]["selector"]["matchLabels"]) == {name}
        (term,) = deployment["spec"]["template"]["spec"]["affinity"]["podAntiAffinity"][
            "preferredDuringSchedulingIgnoredDuringExecution"
        ]
        assert selected(term["podAffinityTerm"]["labelSelector"]["matchLabels"]) == {name}
    assert selected(find(split_rendered, "Service", FULLNAME)["spec"]["selector"]) == {STREAMS}
    assert selected(find(split_rendered, "Service", INGEST)["spec"]["selector"]) == {INGEST}
    assert find(split_rendered, "Service", INGEST)["spec"]["clusterIP"] == "None"
    policy = find(split_rendered, "NetworkPolicy")["spec"]
    assert selected(policy["podSelector"]["matchLabels"]) == {INGEST, STREAMS}
    assert selected(policy["ingress"][0]["from"][0]["podSelector"]["matchLabels"]) == {INGEST, STREAMS}
    # The ServiceMonitor scrapes both Services: the ingest pods' watch metrics too.
    monitor = find(render_chart(CHART_DIR, RELEASE, NAMESPACE, sets=("serviceMonitor.enabled=true",)), "ServiceMonitor")
    services = [o for o in split_rendered if o["kind"] == "Service"]
    wanted = monitor["spec"]["selector"]["matchLabels"].items()
    assert {s["metadata"]["name"] for s in services if wanted <= s["metadata"]["labels"].items()} == {FULLNAME, INGEST}


def test_the_streams_deployment_scales_with_an_hpa_the_ingest_one_never() -> None:
    assert not [o for o in render_chart(CHART_DIR, RELEASE, NAMESPACE) if o["kind"] == "HorizontalPodAutoscaler"]
    sets = (
        "split.streams.autoscaling.enabled=true",
        "split.streams.autoscaling.minReplicas=3",
        "split.streams.autoscaling.maxReplicas=9",
        "split.ingest.replicas=3",
        "split.streams.resources.requests.cpu=500m",
    )
    objects = render_chart(CHART_DIR, RELEASE, NAMESPACE, sets=sets)
    hpa = find(objects, "HorizontalPodAutoscaler")["spec"]
    assert hpa["scaleTargetRef"] == {"apiVersion": "apps/v1", "kind": "Deployment", "name": STREAMS}
    assert (hpa["minReplicas"], hpa["maxReplicas"]) == (3, 9)
    assert hpa["metrics"] == [
        {"type": "Resource", "resource": {"name": "cpu", "target": {"type": "Utilization", "averageUtilization": 70}}}
    ]
    # The HPA owns the count: a replicas field would reset it at every upgrade.
    assert "replicas" not in find(objects, "Deployment", STREAMS)["spec"]
    assert find(objects, "Deployment", INGEST)["spec"]["replicas"] == 3
    (streams,) = find(objects, "Deployment", STREAMS)["spec"]["template"]["spec"]["containers"]
    assert streams["resources"]["requests"]["cpu"] == "500m"
    with pytest.raises(ToolError, match="minReplicas is above maxReplicas"):
        render_chart(CHART_DIR, RELEASE, NAMESPACE, sets=(*sets, "split.streams.autoscaling.minReplicas=10"))
    # allInOne has no HPA: its workers all run the watch's election.
    assert not [
        o for o in helm_template(CHART_DIR, RELEASE, NAMESPACE, sets=sets) if o["kind"] == "HorizontalPodAutoscaler"
    ]


@pytest.mark.parametrize(
    ("sets", "message"),
    [
        (("role=streams",), "role=streams with topology=split"),
        (("role=ingest",), "role=ingest with topology=split"),
        (("ingest=false",), "ingest=false with topology=split"),
        (("topology=both",), "topology"),
        # The Deployments set it (env wins over the ConfigMap): a value there would be silently ignored.
        (("extraEnv.K8SEV_ROLE=ingest",), "extraEnv.K8SEV_ROLE: the chart sets K8SEV_ROLE itself"),
        (("topology=allInOne", "extraEnv.K8SEV_ROLE=ingest"), "extraEnv.K8SEV_ROLE: the chart sets K8SEV_ROLE"),
    ],
)
def test_the_split_topology_refuses_a_role_of_its_own(sets: tuple[str, ...], message: str) -> None:
    with pytest.raises(ToolError, match=message):
        render_chart(CHART_DIR, RELEASE, NAMESPACE, sets=sets)


@pytest.mark.stack
@pytest.mark.slow
def test_helm_install_of_the_split_layout_gives_each_role_its_least_privilege(
    release: str,
    release_namespace: str,
    other_namespace: str,
    kube_client: client.ApiClient,
    stack: dict[str, str],
    tmp_path: Path,
) -> None:
    kubeconfig = stack["KUBECONFIG"]
    install(release, release_namespace, kubeconfig)
    objects = manifest_objects(release, release_namespace, kubeconfig)
    fullname = f"{release}-k8s-event-streams"
    apps = client.AppsV1Api(kube_client)
    core = client.CoreV1Api(kube_client)
    for role in ("ingest", "streams"):
        name = f"{fullname}-{role}"
        assert apps.read_namespaced_deployment(name, release_namespace).status.available_replicas == 2, name
        assert_restricted_pod_security(core, release_namespace, find(objects, "Deployment", name)["spec"]["template"])
    server, ca = admin_cluster(kubeconfig)
    ca_file = tmp_path / "ca.crt"
    ca_file.write_bytes(ca)
    ingest = token_client(server, ca_file, service_account_token(core, fullname, release_namespace))
    streams = token_client(server, ca_file, service_account_token(core, f"{fullname}-streams", release_namespace))
    try:
        # The ingest pods serve no explorer: Events and the Lease, and not even the reviews.
        assert_least_privilege(ingest, release_namespace, other_namespace, explorer=False)
        assert_streams_privilege(streams, release_namespace, other_namespace)
    finally:
        ingest.close()
        streams.close()


@pytest.mark.stack
@pytest.mark.slow
def test_helm_upgrade_from_all_in_one_to_split_keeps_the_lease_and_its_checkpoint(
    release: str, release_namespace: str, kube_client: client.ApiClient, stack: dict[str, str]
) -> None:
    kubeconfig = stack["KUBECONFIG"]
    install(release, release_namespace, kubeconfig, *ALL_IN_ONE)
    fullname = f"{release}-k8s-event-streams"
    apps = client.AppsV1Api(kube_client)
    core = client.CoreV1Api(kube_client)
    leases = client.CoordinationV1Api(kube_client)
    before = {
        o["metadata"]["name"]
        for o in manifest_objects(release, release_namespace, kubeconfig)
        if o["kind"] == "Deployment"
    }
    # kwok's pods run no worker: write the Lease as the leading all-in-one worker would (streams/ingest/election.py:
    # the elector's name and namespace from the settings, the checkpoint annotation, a renewed spec).
    config = core.read_namespaced_config_map(fullname, release_namespace).data
    lease_name = Settings.from_env({**config, "K8SEV_IDENTITY": "p"}).lease.name
    checkpoint = Checkpoint()
    checkpoint.set("", "123456", datetime.now(UTC))
    now = micro_time(datetime.now(UTC))
    body = {
        "apiVersion": "coordination.k8s.io/v1",
        "kind": "Lease",
        "metadata": {"name": lease_name, "annotations": {CHECKPOINT_ANNOTATION: checkpoint.encode()}},
        "spec": {
            "holderIdentity": f"{fullname}-abc12-xyz34",
            "leaseDurationSeconds": 15,
            "acquireTime": now,
            "renewTime": now,
            "leaseTransitions": 0,
        },
    }
    leases.create_namespaced_lease(release_namespace, body)
    held = leases.read_namespaced_lease(lease_name, release_namespace)
    account = core.read_namespaced_service_account(fullname, release_namespace)

    helm(
        "upgrade",
        release,
        str(CHART_DIR),
        "--namespace",
        release_namespace,
        "--reuse-values",
        "--set",
        "topology=split",
        "--wait",
        "--timeout",
        "3m",
        kubeconfig=kubeconfig,
        timeout=240,
    )
    after = manifest_objects(release, release_namespace, kubeconfig)
    deployments = {o["metadata"]["name"]: o for o in after if o["kind"] == "Deployment"}
    assert set(deployments) == {f"{fullname}-ingest", f"{fullname}-streams"} and fullname in before
    wait.until(
        "the all-in-one Deployment gone",
        lambda: (
            not [d for d in apps.list_namespaced_deployment(release_namespace).items if d.metadata.name == fullname]
        ),
        timeout=60,
        not_yet=transient.kube,
    )
    kept = leases.read_namespaced_lease(lease_name, release_namespace)
    assert (kept.metadata.uid, kept.metadata.resource_version) == (held.metadata.uid, held.metadata.resource_version)
    assert Checkpoint.decode(kept.metadata.annotations[CHECKPOINT_ANNOTATION]).get("") == checkpoint.get("")
    assert kept.spec.holder_identity == held.spec.holder_identity
    # The ingest pods elect on that same Lease: its name from the settings, its namespace their own.
    ingest = role_environment(after, f"{fullname}-ingest")
    settings = Settings.from_env({**ingest, "K8SEV_LEASE_NAMESPACE": release_namespace})
    assert (settings.lease.name, settings.runs_ingest) == (lease_name, True)
    assert "K8SEV_LEASE_NAMESPACE" not in ingest
    assert deployments[f"{fullname}-ingest"]["metadata"]["namespace"] == kept.metadata.namespace == release_namespace
    # And they run as the account the all-in-one workers had (the same object, the Lease's Role bound).
    assert deployments[f"{fullname}-ingest"]["spec"]["template"]["spec"]["serviceAccountName"] == fullname
    assert core.read_namespaced_service_account(fullname, release_namespace).metadata.uid == account.metadata.uid


def split_overlay(tmp_path: Path) -> list[dict[str, Any]]:
    """k8s/ with components/split, as docs/deploy.md's overlay has it."""
    overlay = tmp_path / "overlay"
    overlay.mkdir()
    spec = {
        "resources": [os.path.relpath(K8S_DIR, overlay)],
        "components": [os.path.relpath(K8S_DIR / "components" / "split", overlay)],
    }
    (overlay / "kustomization.yaml").write_text(yaml.safe_dump(spec))
    return kustomize_build(overlay)


def test_kustomize_split_gives_each_role_what_the_chart_gives_it(
    split_rendered: list[dict[str, Any]], tmp_path: Path
) -> None:
    ours = split_overlay(tmp_path)
    # kustomize keeps the base Deployment's name for the streams one (a patch cannot rename).
    names = {"ingest": ("k8s-event-streams-ingest", INGEST), "streams": ("k8s-event-streams", STREAMS)}
    accounts = {"ingest": ("k8s-event-streams", FULLNAME), "streams": ("k8s-event-streams-streams", STREAMS)}
    for role, (kustomized, charted) in names.items():
        ours_pod = find(ours, "Deployment", kustomized)["spec"]["template"]
        chart_pod = find(split_rendered, "Deployment", charted)["spec"]["template"]
        assert ours_pod["metadata"]["labels"][ROLE_LABEL] == chart_pod["metadata"]["labels"][ROLE_LABEL] == role
        assert ours_pod["spec"]["serviceAccountName"] == accounts[role][0]
        assert chart_pod["spec"]["serviceAccountName"] == accounts[role][1]
        assert granted_rules(ours, accounts[role][0]) == granted_rules(split_rendered, accounts[role][1]), role
        assert Settings.from_env(role_environment(ours, kustomized)) == Settings.from_env(
            role_environment(split_rendered, charted)
        ), role
        for field in ("securityContext", "volumes", "terminationGracePeriodSeconds"):
            assert ours_pod["spec"][field] == chart_pod["spec"][field], (role, field)
    assert granted_rules(ours, "k8s-event-streams-streams") == REVIEWS
    assert granted_rules(ours, "k8s-event-streams") == EVENTS | LEASE
    ingest_labels = find(ours, "Deployment", "k8s-event-streams-ingest")["spec"]["template"]["metadata"]["labels"]
    streams_labels = find(ours, "Deployment", "k8s-event-streams")["spec"]["template"]["metadata"]["labels"]
    for selector, wanted in (
        (find(ours, "Service", "k8s-event-streams")["spec"]["selector"], (False, True)),
        (find(ours, "Service", "k8s-event-streams-ingest")["spec"]["selector"], (True, False)),
        (find(ours, "PodDisruptionBudget", "k8s-event-streams")["spec"]["selector"]["matchLabels"], (False, True)),
        (
            find(ours, "PodDisruptionBudget", "k8s-event-streams-ingest")["spec"]["selector"]["matchLabels"],
            (True, False),
        ),
        (find(ours, "NetworkPolicy")["spec"]["podSelector"]["matchLabels"], (True, True)),
        (find(ours, "NetworkPolicy")["spec"]["ingress"][0]["from"][0]["podSelector"]["matchLabels"], (True, True)),
    ):
        assert (selector.items() <= ingest_labels.items(), selector.items() <= streams_labels.items()) == wanted


def test_the_kustomize_ingest_deployment_is_the_base_one_with_its_role(tmp_path: Path) -> None:
    """components/split/deployment-ingest.yaml is a copy: it must differ from k8s/deployment.yaml only
    where the role needs it, so a change to the base is made to it too."""
    base = load_yaml(K8S_DIR / "deployment.yaml")
    ingest = load_yaml(K8S_DIR / "components" / "split" / "deployment-ingest.yaml")
    expected = copy.deepcopy(base)
    expected["metadata"]["name"] = "k8s-event-streams-ingest"
    role = {ROLE_LABEL: "ingest"}
    for labels in (
        expected["metadata"]["labels"],
        expected["spec"]["selector"]["matchLabels"],
        expected["spec"]["template"]["metadata"]["labels"],
        expected["spec"]["template"]["spec"]["affinity"]["podAntiAffinity"][
            "preferredDuringSchedulingIgnoredDuringExecution"
        ][0]["podAffinityTerm"]["labelSelector"]["matchLabels"],
    ):
        labels.update(role)
    expected["spec"]["template"]["spec"]["containers"][0]["env"] += [
        {"name": "K8SEV_ROLE", "value": "ingest"},
        {"name": "K8SEV_EXPLORER", "value": "false"},
    ]
    assert ingest == expected
