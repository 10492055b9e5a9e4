"""The local control plane behaves like a real cluster where this project cares: the pinned version,
core/v1 Events in and out through a watch, and a Deployment producing the controller and scheduler
events the collector streams (with pods taken to Running/Ready by kwok)."""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Iterator
from typing import Any, TypeVar

import pytest
from kubernetes import client, watch

from devstack import kube, transient, wait
from tests.fixtures.stack import unique_name

pytestmark = pytest.mark.stack

T = TypeVar("T")


def _eventually(what: str, check: Callable[[], T | None], timeout: float = 60.0) -> T:
    """Poll ``check`` until it returns something truthy; an API server busy starting is "not yet"."""
    found = wait.until(what, check, timeout=timeout, not_yet=transient.kube)
    assert found is not None
    return found


def test_version_is_the_pinned_release(kube_client: client.ApiClient) -> None:
    info = client.VersionApi(kube_client).get_code()

    assert info.git_version == kube.KUBERNETES_VERSION
    assert (info.major, info.minor) == ("1", "35")
    assert info.git_tree_state == "clean"


def test_core_event_created_is_seen_by_a_watch(kube_client: client.ApiClient, namespace: str) -> None:
    core = client.CoreV1Api(kube_client)
    listed = core.list_namespaced_event(namespace).metadata
    assert listed is not None
    now = dt.datetime.now(dt.UTC)
    name = unique_name("smoke")
    core.create_namespaced_event(
        namespace,
        client.CoreV1Event(
            metadata=client.V1ObjectMeta(name=name),
            involved_object=client.V1ObjectReference(
                api_version="v1", kind="Pod", namespace=namespace, name="smoke-pod"
            ),
            reason="SmokeTest",
            message="hello from test_kube_smoke",
            type="Normal",
            source=client.V1EventSource(component="devstack-smoke"),
            first_timestamp=now,
            last_timestamp=now,
            count=1,
        ),
    )

    seen: dict[str, Any] | None = None
    for item in _watch_events(core, namespace, since=listed.resource_version, timeout=30):
        if item["type"] == "ADDED" and item["object"]["metadata"]["name"] == name:
            seen = item["object"]
            break

    assert seen is not None, "the watch ended without delivering the event"
    assert seen["reason"] == "SmokeTest"
    assert seen["involvedObject"] == {"apiVersion": "v1", "kind": "Pod", "namespace": namespace, "name": "smoke-pod"}
    assert seen["source"] == {"component": "devstack-smoke"}


def _watch_events(core: client.CoreV1Api, namespace: str, since: str | None, timeout: int) -> Iterator[dict[str, Any]]:
    """Raw watch events (``type`` and the JSON ``object``), as the collector receives them."""
    stream = watch.Watch()
    yield from stream.stream(
        core.list_namespaced_event, namespace, resource_version=since, timeout_seconds=timeout, deserialize=False
    )


def test_deployment_runs_on_a_fake_node_and_emits_events(
    kube_client: client.ApiClient, namespace: str, fake_node: str
) -> None:
    apps, core = client.AppsV1Api(kube_client), client.CoreV1Api(kube_client)
    labels = {"app": "smoke"}
    apps.create_namespaced_deployment(namespace, _deployment("smoke", labels, replicas=2))

    def running_ready_pods() -> dict[str, str] | None:
        """Pod name -> node name, once both replicas are Running and Ready."""
        pods = core.list_namespaced_pod(namespace, label_selector="app=smoke").items
        ready = {_name(p.metadata): _node_of(p) for p in pods if _running_ready(p)}
        return ready if len(ready) == 2 else None

    pods = _eventually("2 Running/Ready pods", running_ready_pods)
    assert set(pods.values()) == {fake_node}

    def events_by_reason() -> dict[str, list[client.CoreV1Event]] | None:
        grouped: dict[str, list[client.CoreV1Event]] = {}
        for event in core.list_namespaced_event(namespace).items:
            grouped.setdefault(event.reason or "", []).append(event)
        wanted = {"Scheduled": 2, "SuccessfulCreate": 2, "ScalingReplicaSet": 1}
        return grouped if all(len(grouped.get(r, [])) >= n for r, n in wanted.items()) else None

    events = _eventually("Scheduled, SuccessfulCreate and ScalingReplicaSet events", events_by_reason)

    assert {e.involved_object.kind for e in events["ScalingReplicaSet"]} == {"Deployment"}
    assert {e.involved_object.kind for e in events["SuccessfulCreate"]} == {"ReplicaSet"}
    scheduled = events["Scheduled"]
    assert {e.involved_object.name for e in scheduled} == set(pods)
    assert all(fake_node in (e.message or "") for e in scheduled)
    # The scheduler writes events.k8s.io/v1 Events: through core/v1 they carry eventTime only.
    assert all(e.event_time is not None and e.first_timestamp is None for e in scheduled)
    assert {e.reporting_component for e in scheduled} == {"default-scheduler"}

    status = apps.read_namespaced_deployment_status("smoke", namespace).status
    assert status is not None
    assert status.ready_replicas == 2


def _deployment(name: str, labels: dict[str, str], replicas: int) -> client.V1Deployment:
    container = client.V1Container(name="app", image="registry.invalid/smoke:1")
    return client.V1Deployment(
        metadata=client.V1ObjectMeta(name=name, labels=labels),
        spec=client.V1DeploymentSpec(
            replicas=replicas,
            selector=client.V1LabelSelector(match_labels=labels),
            template=client.V1PodTemplateSpec(
                metadata=client.V1ObjectMeta(labels=labels),
                spec=client.V1PodSpec(containers=[container]),
            ),
        ),
    )


def _name(meta: client.V1ObjectMeta | None) -> str:
    assert meta is not None
    name: str = meta.name
    return name


def _node_of(pod: client.V1Pod) -> str:
    node: str = (pod.spec.node_name if pod.spec else None) or ""
    return node


def _running_ready(pod: client.V1Pod) -> bool:
    if pod.status is None or pod.status.phase != "Running":
        return False
    return any(c.type == "Ready" and c.status == "True" for c in pod.status.conditions or [])
