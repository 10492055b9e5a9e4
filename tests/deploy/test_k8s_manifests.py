"""k8s/: the kustomization renders what the worker needs, and its RBAC is enough and no more.

The static tests read the rendered objects. The ``stack`` tests apply them server-side to the local
stack's real API server (RBAC on, Pod Security admission on) in a fresh namespace, take a token for the
ServiceAccount through the TokenRequest API, probe what that token may do, and run a worker with it:
an Event created in another namespace must reach Elasticsearch.
"""

from __future__ import annotations

import contextlib
import copy
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from elasticsearch import Elasticsearch
from kubernetes import client
from kubernetes.client.exceptions import ApiException
from kubernetes.dynamic import DynamicClient

from devstack import transient, wait
from streams.config.settings import Settings
from streams.config.values import api_resource
from tests.deploy.helpers import CLUSTER_SCOPED, DEPLOY_DOC, K8S_DIR, defaults, find, load_yaml
from tests.deploy.rbac import (
    RESTRICTED,
    admin_cluster,
    assert_least_privilege,
    assert_restricted_pod_security,
    assert_streams_privilege,
    service_account_token,
    token_client,
    write_token_kubeconfig,
)
from tests.e2e.helpers import create_event, documents, identity
from tests.fixtures.tools import kustomize_build

pytestmark = pytest.mark.deploy

NAMESPACE = "k8s-event-streams"
SERVICE_ACCOUNT = "k8s-event-streams"
FIELD_MANAGER = "k8s-event-streams-tests"
SECRET_SETTINGS = {f"{var}" for _, var, _, _ in Settings.documentation() if "PASSWORD" in var or "API_KEY" in var}


@pytest.fixture(scope="module")
def objects() -> list[dict[str, Any]]:
    return kustomize_build(K8S_DIR)


def pod_spec(objects: list[dict[str, Any]]) -> dict[str, Any]:
    spec: dict[str, Any] = find(objects, "Deployment")["spec"]["template"]["spec"]
    return spec


def worker_container(objects: list[dict[str, Any]]) -> dict[str, Any]:
    (container,) = pod_spec(objects)["containers"]
    result: dict[str, Any] = container
    return result


def literal_env(container: dict[str, Any]) -> dict[str, str]:
    """The container's env entries with a plain value (no fieldRef, no $(...) reference)."""
    return {e["name"]: e["value"] for e in container.get("env", []) if "value" in e and "$(" not in e["value"]}


# --- the rendered objects ------------------------------------------------------------------------


def test_the_kustomization_renders_the_expected_objects(objects: list[dict[str, Any]]) -> None:
    assert sorted((o["kind"], o["metadata"]["name"]) for o in objects) == sorted(
        [
            ("Namespace", NAMESPACE),
            ("ServiceAccount", SERVICE_ACCOUNT),
            ("ClusterRole", "k8s-event-streams-events-reader"),
            ("ClusterRoleBinding", "k8s-event-streams-events-reader"),
            ("Role", "k8s-event-streams-lease"),
            ("RoleBinding", "k8s-event-streams-lease"),
            ("ConfigMap", "k8s-event-streams"),
            ("Deployment", "k8s-event-streams"),
            ("PodDisruptionBudget", "k8s-event-streams"),
            ("Service", "k8s-event-streams"),
            ("NetworkPolicy", "k8s-event-streams"),
        ]
    )
    for obj in objects:
        if obj["kind"] not in CLUSTER_SCOPED:
            assert obj["metadata"]["namespace"] == NAMESPACE


def test_the_service_monitor_is_an_opt_in_component(objects: list[dict[str, Any]], tmp_path: Path) -> None:
    assert "ServiceMonitor" not in {o["kind"] for o in objects}
    component = K8S_DIR / "components" / "servicemonitor"
    assert load_yaml(component / "kustomization.yaml")["kind"] == "Component"
    overlay = tmp_path / "overlay"
    overlay.mkdir()
    (overlay / "kustomization.yaml").write_text(
        # kustomize takes only relative paths, as an overlay in the repository would write them.
        yaml.safe_dump(
            {"resources": [os.path.relpath(K8S_DIR, overlay)], "components": [os.path.relpath(component, overlay)]}
        )
    )
    monitor = find(kustomize_build(overlay), "ServiceMonitor")
    service = find(objects, "Service")
    assert monitor["spec"]["selector"]["matchLabels"].items() <= service["metadata"]["labels"].items()
    (endpoint,) = monitor["spec"]["endpoints"]
    assert endpoint["path"] == "/metrics"
    assert endpoint["port"] in {p["name"] for p in service["spec"]["ports"]}


def test_rbac_reads_events_and_writes_only_its_own_lease(objects: list[dict[str, Any]]) -> None:
    cluster_role = find(objects, "ClusterRole")
    rules = sorted(
        (tuple(r["apiGroups"]), tuple(r["resources"]), tuple(sorted(r["verbs"]))) for r in cluster_role["rules"]
    )
    assert rules == [
        (("",), ("events",), ("get", "list", "watch")),
        (("authentication.k8s.io",), ("tokenreviews",), ("create",)),
        (("authorization.k8s.io",), ("subjectaccessreviews",), ("create",)),
        (("events.k8s.io",), ("events",), ("get", "list", "watch")),
    ]
    role = find(objects, "Role")
    assert role["metadata"]["namespace"] == NAMESPACE
    assert [(r["apiGroups"], r["resources"]) for r in role["rules"]] == [(["coordination.k8s.io"], ["leases"])]
    assert set(role["rules"][0]["verbs"]) == {"get", "create", "update"}
    subject = {"kind": "ServiceAccount", "name": SERVICE_ACCOUNT, "namespace": NAMESPACE}
    for kind, role_kind, role_obj in (
        ("ClusterRoleBinding", "ClusterRole", cluster_role),
        ("RoleBinding", "Role", role),
    ):
        binding = find(objects, kind)
        assert binding["subjects"] == [subject]
        assert binding["roleRef"] == {
            "apiGroup": "rbac.authorization.k8s.io",
            "kind": role_kind,
            "name": role_obj["metadata"]["name"],
        }
    assert pod_spec(objects)["serviceAccountName"] == SERVICE_ACCOUNT


def test_the_config_map_holds_valid_worker_settings(objects: list[dict[str, Any]]) -> None:
    data = find(objects, "ConfigMap")["data"]
    assert set(data) <= set(defaults()), f"not worker settings: {sorted(set(data) - set(defaults()))}"
    assert not set(data) & SECRET_SETTINGS, "secrets belong in a Secret"
    container = worker_container(objects)
    assert {"configMapRef": {"name": find(objects, "ConfigMap")["metadata"]["name"]}} in container["envFrom"]
    env_names = {e["name"] for e in container["env"]}
    assert {n for n in env_names if n.startswith("K8SEV_")} <= set(defaults())
    settings = Settings.from_env({**data, **literal_env(container)})
    default = Settings.from_env({})
    assert (
        settings.kafka.raw_topic == default.kafka.raw_topic
        and settings.search.index_prefix == default.search.index_prefix
    )
    assert settings.stages.ingest is True


def test_the_deployment_is_replicated_probed_and_locked_down(objects: list[dict[str, Any]]) -> None:
    deployment = find(objects, "Deployment")
    assert deployment["spec"]["replicas"] >= 2
    spec = pod_spec(objects)
    container = worker_container(objects)
    settings = Settings.from_env({**find(objects, "ConfigMap")["data"], **literal_env(container)})
    (port,) = container["ports"]
    assert port["containerPort"] == settings.web.port == 6066
    probes = {name: container[name]["httpGet"] for name in ("startupProbe", "livenessProbe", "readinessProbe")}
    assert probes["livenessProbe"]["path"] == probes["startupProbe"]["path"] == "/healthz"
    assert probes["readinessProbe"]["path"] == "/readyz"
    assert {p["port"] for p in probes.values()} == {port["name"]}
    resources = container["resources"]
    assert resources["requests"]["cpu"] and resources["requests"]["memory"] and resources["limits"]["memory"]
    pod_security = spec["securityContext"]
    assert pod_security["runAsNonRoot"] is True and pod_security["runAsUser"] != 0
    assert pod_security["seccompProfile"] == {"type": "RuntimeDefault"}
    security = container["securityContext"]
    assert security["allowPrivilegeEscalation"] is False
    assert security["readOnlyRootFilesystem"] is True
    assert security["capabilities"]["drop"] == ["ALL"]
    # The read-only root leaves two writable places: the Faust data dir and /tmp, both emptyDirs.
    volumes = {v["name"]: v for v in spec["volumes"]}
    mounts = {m["mountPath"]: m["name"] for m in container["volumeMounts"]}
    assert "emptyDir" in volumes[mounts[str(settings.data_dir)]]
    assert "emptyDir" in volumes[mounts["/tmp"]]
    # Each pod names itself in the Lease and tells its peers where its /counts views are.
    env = {e["name"]: e for e in container["env"]}
    assert env["K8SEV_IDENTITY"]["value"] == "$(POD_NAME)"
    assert env["POD_IP"]["valueFrom"]["fieldRef"]["fieldPath"] == "status.podIP"
    assert env["K8SEV_WEB_HOST"]["value"] == "$(POD_IP)"
    names = list(env)
    assert names.index("POD_IP") < names.index("K8SEV_WEB_HOST"), "$(POD_IP) must be defined before its use"


def test_service_and_disruption_budget_select_the_pods(objects: list[dict[str, Any]]) -> None:
    labels = find(objects, "Deployment")["spec"]["template"]["metadata"]["labels"]
    assert find(objects, "Deployment")["spec"]["selector"]["matchLabels"].items() <= labels.items()
    service = find(objects, "Service")
    assert service["spec"]["selector"].items() <= labels.items()
    (port,) = service["spec"]["ports"]
    assert port["port"] == 6066 and port["targetPort"] == "web"
    budget = find(objects, "PodDisruptionBudget")
    assert budget["spec"]["selector"]["matchLabels"].items() <= labels.items()
    assert budget["spec"]["maxUnavailable"] < find(objects, "Deployment")["spec"]["replicas"]


def test_the_deploy_doc_applies_this_directory() -> None:
    doc = DEPLOY_DOC.read_text()
    assert "kubectl apply -k k8s/" in doc


# --- on the real API server ----------------------------------------------------------------------


def for_test_namespace(objects: list[dict[str, Any]], namespace: str) -> list[dict[str, Any]]:
    """The objects moved into ``namespace``; cluster-scoped names get its name as suffix (unique per run)."""
    moved = []
    renamed: dict[str, str] = {}
    for original in objects:
        obj = copy.deepcopy(original)
        meta = obj["metadata"]
        if obj["kind"] == "Namespace":
            meta["name"] = namespace
        elif obj["kind"] in CLUSTER_SCOPED:
            renamed[meta["name"]] = meta["name"] = f"{meta['name']}-{namespace}"
        else:
            meta["namespace"] = namespace
        for subject in obj.get("subjects", []):
            subject["namespace"] = namespace
        moved.append(obj)
    for obj in moved:
        if obj["kind"] == "ClusterRoleBinding":
            obj["roleRef"]["name"] = renamed[obj["roleRef"]["name"]]
    return moved


def apply(dynamic: DynamicClient, obj: dict[str, Any], *, dry_run: bool = False) -> Any:
    resource = dynamic.resources.get(api_version=obj["apiVersion"], kind=obj["kind"])
    extra = {"dry_run": "All"} if dry_run else {}
    return resource.server_side_apply(
        body=obj,
        name=obj["metadata"]["name"],
        namespace=obj["metadata"].get("namespace"),
        field_manager=FIELD_MANAGER,
        force_conflicts=True,
        **extra,
    )


@pytest.fixture
def applied(
    kube_client: client.ApiClient, namespace: str, fake_node: str
) -> Iterator[tuple[list[dict[str, Any]], str]]:
    """k8s/ applied server-side into the test namespace; the cluster-scoped objects deleted afterwards."""
    dynamic = DynamicClient(kube_client)
    objects = for_test_namespace(kustomize_build(K8S_DIR), namespace)
    cluster_scoped = [o for o in objects if o["kind"] in {"ClusterRole", "ClusterRoleBinding"}]
    try:
        for obj in objects:
            apply(dynamic, obj)
        yield objects, namespace
    finally:
        rbac = client.RbacAuthorizationV1Api(kube_client)
        for obj in cluster_scoped:
            delete = rbac.delete_cluster_role if obj["kind"] == "ClusterRole" else rbac.delete_cluster_role_binding
            with contextlib.suppress(ApiException):
                delete(obj["metadata"]["name"])


@pytest.mark.stack
@pytest.mark.slow
def test_the_manifests_apply_and_the_pods_pass_restricted_pod_security(
    applied: tuple[list[dict[str, Any]], str], kube_client: client.ApiClient
) -> None:
    objects, namespace = applied
    core = client.CoreV1Api(kube_client)
    assert RESTRICTED.items() <= find(objects, "Namespace")["metadata"]["labels"].items()
    assert_restricted_pod_security(core, namespace, find(objects, "Deployment")["spec"]["template"])
    # The real Deployment: kwok plays the node, so both replicas become available.
    apps = client.AppsV1Api(kube_client)

    def available() -> int:
        return int(apps.read_namespaced_deployment("k8s-event-streams", namespace).status.available_replicas or 0)

    assert wait.until("two available replicas", available, timeout=90, ready=lambda n: n >= 2,
                      not_yet=transient.kube) == 2  # fmt: skip
    service = core.read_namespaced_service("k8s-event-streams", namespace)
    assert service.spec.ports[0].port == 6066
    budget = client.PolicyV1Api(kube_client).read_namespaced_pod_disruption_budget("k8s-event-streams", namespace)
    assert budget.spec.max_unavailable == 1


@pytest.mark.stack
@pytest.mark.slow
def test_the_service_account_may_watch_events_everywhere_and_nothing_more(
    applied: tuple[list[dict[str, Any]], str],
    other_namespace: str,
    kube_client: client.ApiClient,
    stack: dict[str, str],
    tmp_path: Path,
    make_worker: Any,
    es_client: Elasticsearch,
) -> None:
    _, namespace = applied
    core = client.CoreV1Api(kube_client)
    token = service_account_token(core, SERVICE_ACCOUNT, namespace)
    server, ca = admin_cluster(stack["KUBECONFIG"])
    ca_file = tmp_path / "ca.crt"
    ca_file.write_bytes(ca)
    sa = token_client(server, ca_file, token)
    try:
        assert_least_privilege(sa, namespace, other_namespace)
    finally:
        sa.close()

    # The worker with nothing but that token: cluster-wide watch, its Lease in its own namespace.
    kubeconfig = write_token_kubeconfig(tmp_path / "sa.kubeconfig", server, ca, token, namespace)
    worker = make_worker(KUBECONFIG=str(kubeconfig), K8SEV_KUBECONFIG=str(kubeconfig), K8SEV_LEASE_NAMESPACE=namespace)
    event = create_event(core, other_namespace, "seen-through-rbac", reason="DeployTest", type_="Warning")
    wanted = identity(event)

    (doc,) = wait.until(
        f"document {wanted}",
        lambda: documents(es_client, worker.index_prefix, ids={"values": [wanted]}),
        timeout=90,
        not_yet=transient.search,
    )
    assert doc["metadata"]["namespace"] == other_namespace and doc["reason"] == "DeployTest"
    leases = client.CoordinationV1Api(kube_client)
    lease = leases.read_namespaced_lease(f"{worker.env['K8SEV_APP_ID']}-ingest", namespace)
    assert lease.spec.holder_identity, "the worker holds the ingest Lease in its own namespace"
    assert "forbidden" not in worker.tail(200).lower()


def metadata_rules(cluster_role: dict[str, Any]) -> set[tuple[str, str, tuple[str, ...]]]:
    return {
        (g, r, tuple(sorted(rule["verbs"])))
        for rule in cluster_role["rules"]
        for g in rule["apiGroups"]
        for r in rule["resources"]
    }


def enrich_defaults() -> set[tuple[str, str, tuple[str, ...]]]:
    """(group, resource, verbs) the worker's default K8SEV_ENRICH_RESOURCES needs: list and watch, nothing else."""
    return {(g, r, ("list", "watch")) for g, _, r in map(api_resource, Settings().enrich.resources)}


def test_enrichment_is_an_opt_in_component_granting_list_and_watch_on_exactly_its_kinds(
    objects: list[dict[str, Any]], tmp_path: Path
) -> None:
    assert "k8s-event-streams-metadata-reader" not in {o["metadata"]["name"] for o in objects}
    component = K8S_DIR / "components" / "enrich"
    overlay = tmp_path / "overlay"
    overlay.mkdir()
    (overlay / "kustomization.yaml").write_text(
        yaml.safe_dump(
            {"resources": [os.path.relpath(K8S_DIR, overlay)], "components": [os.path.relpath(component, overlay)]}
        )
    )
    built = kustomize_build(overlay)
    role = next(
        o for o in built if o["metadata"]["name"] == "k8s-event-streams-metadata-reader" and o["kind"] == "ClusterRole"
    )
    assert metadata_rules(role) == enrich_defaults()
    binding = next(
        o for o in built if o["kind"] == "ClusterRoleBinding" and o["roleRef"]["name"] == role["metadata"]["name"]
    )
    assert binding["subjects"] == [{"kind": "ServiceAccount", "name": SERVICE_ACCOUNT, "namespace": NAMESPACE}]
    config = next(o for o in built if o["kind"] == "ConfigMap")
    assert Settings.from_env(config["data"]).enrich.enabled


@pytest.mark.stack
@pytest.mark.slow
def test_the_split_component_applies_and_each_role_gets_its_least_privilege(
    kube_client: client.ApiClient,
    namespace: str,
    other_namespace: str,
    fake_node: str,
    stack: dict[str, str],
    tmp_path: Path,
) -> None:
    """k8s/ with components/split applied server-side: two Deployments available, both pod templates
    restricted, the ingest account may watch Events and its Lease (no reviews), the streams account
    only the reviews."""
    overlay = tmp_path / "overlay"
    overlay.mkdir()
    spec = {
        "resources": [os.path.relpath(K8S_DIR, overlay)],
        "components": [os.path.relpath(K8S_DIR / "components" / "split", overlay)],
    }
    (overlay / "kustomization.yaml").write_text(yaml.safe_dump(spec))
    objects = for_test_namespace(kustomize_build(overlay), namespace)
    dynamic = DynamicClient(kube_client)
    rbac = client.RbacAuthorizationV1Api(kube_client)
    core = client.CoreV1Api(kube_client)
    apps = client.AppsV1Api(kube_client)
    try:
        for obj in objects:
            apply(dynamic, obj)
        for name in ("k8s-event-streams-ingest", "k8s-event-streams"):
            assert_restricted_pod_security(core, namespace, find(objects, "Deployment", name)["spec"]["template"])

            def available(name: str = name) -> int:
                return int(apps.read_namespaced_deployment(name, namespace).status.available_replicas or 0)

            assert wait.until(f"{name}: two available replicas", available, timeout=90, ready=lambda n: n >= 2,
                              not_yet=transient.kube) == 2  # fmt: skip
        server, ca = admin_cluster(stack["KUBECONFIG"])
        ca_file = tmp_path / "ca.crt"
        ca_file.write_bytes(ca)
        ingest = token_client(server, ca_file, service_account_token(core, SERVICE_ACCOUNT, namespace))
        streams = token_client(server, ca_file, service_account_token(core, f"{SERVICE_ACCOUNT}-streams", namespace))
        try:
            assert_least_privilege(ingest, namespace, other_namespace, explorer=False)
            assert_streams_privilege(streams, namespace, other_namespace)
        finally:
            ingest.close()
            streams.close()
    finally:
        for obj in objects:
            if obj["kind"] in {"ClusterRole", "ClusterRoleBinding"}:
                delete = rbac.delete_cluster_role if obj["kind"] == "ClusterRole" else rbac.delete_cluster_role_binding
                with contextlib.suppress(ApiException):
                    delete(obj["metadata"]["name"])
