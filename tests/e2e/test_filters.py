"""The ingest filters on the real stack: a worker with every exclusion set watches the whole cluster;
exactly the events no rule matches are indexed, and each rule's drops are counted under its label."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

import pytest
from elasticsearch import Elasticsearch
from kubernetes import client
from kubernetes.client.exceptions import ApiException

from devstack import wait
from tests.e2e.helpers import documents, metric, now_rfc3339, once_consumed
from tests.fixtures.stack import unique_name

pytestmark = [pytest.mark.stack, pytest.mark.e2e, pytest.mark.slow]


@pytest.fixture
def namespaces(kube_client: client.ApiClient) -> Iterator[dict[str, str]]:
    """Four fresh namespaces: one to keep, one excluded by name, one by a glob, and the glob's near miss."""
    core = client.CoreV1Api(kube_client)
    base = unique_name("flt")
    names = {"keep": f"{base}-keep", "exact": f"{base}-x", "glob": f"{base}-n-1", "near": f"{base}-n"}
    for name in names.values():
        core.create_namespace(client.V1Namespace(metadata=client.V1ObjectMeta(name=name)))
    yield names
    for name in names.values():
        try:
            core.delete_namespace(name)
        except ApiException as exc:
            if exc.status != 404:
                raise


def core_event(core: client.CoreV1Api, namespace: str, name: str, *, kind: str = "Pod", reason: str = "Tested",
               component: str = "e2e-test", message: str = "made by a test") -> str:  # fmt: skip
    """A core/v1 Event, as the kubelet and most controllers write them (source.component). Its uid."""
    stamp = now_rfc3339()
    body = {
        "metadata": {"name": name, "namespace": namespace},
        "involvedObject": {"kind": kind, "namespace": namespace, "name": f"{name}-obj"},
        "reason": reason,
        "message": message,
        "type": "Normal",
        "count": 1,
        "firstTimestamp": stamp,
        "lastTimestamp": stamp,
        "source": {"component": component},
    }
    return str(core.create_namespaced_event(namespace, body).metadata.uid)


def events_v1_event(api: client.ApiClient, namespace: str, name: str, *, controller: str) -> str:
    """An events.k8s.io/v1 Event, as the scheduler writes them: reportingController, no source. Its uid."""
    body = {
        "metadata": {"name": name, "namespace": namespace},
        "eventTime": datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ"),
        "reportingController": controller,
        "reportingInstance": f"{controller}-0",
        "action": "Binding",
        "reason": "Scheduled",
        "regarding": {"kind": "Pod", "namespace": namespace, "name": f"{name}-obj"},
        "note": "Successfully assigned it",
        "type": "Normal",
    }
    return str(client.EventsV1Api(api).create_namespaced_event(namespace, body).metadata.uid)


def test_each_filter_drops_what_it_names_and_nothing_else(
    make_worker: Any, kube_client: client.ApiClient, namespaces: dict[str, str], es_client: Elasticsearch
) -> None:
    # Every value is this test's own: the worker watches every namespace, where other tests' events live too.
    tag = unique_name("n").split("-")[1]
    kind, reason, component = f"Noise{tag}", f"Noisy{tag}", f"noisy-{tag}"
    base = namespaces["keep"].rsplit("-", 1)[0]
    worker = make_worker(
        K8SEV_EXCLUDE_NAMESPACES=f"{namespaces['exact']},{base}-n-*",
        K8SEV_EXCLUDE_KINDS=f"{kind},ConfigMapNoise{tag}",
        K8SEV_EXCLUDE_REASONS=reason,
        K8SEV_EXCLUDE_COMPONENTS=component,
        # The shape of lease chatter ("<host>_<uuid> became leader"), with this test's own host name.
        K8SEV_EXCLUDE_MESSAGE=f"^{tag}_[0-9a-f-]+ became leader$|^{tag}_[0-9a-f-]+ stopped leading$",
    )
    core = client.CoreV1Api(kube_client)
    keep = namespaces["keep"]

    dropped = {
        "exclude_namespace": [
            core_event(core, namespaces["exact"], "in-excluded"),
            core_event(core, namespaces["glob"], "in-glob"),
            # Excluded twice over (namespace and kind): counted once, under the first rule tried.
            core_event(core, namespaces["glob"], "in-glob-of-kind", kind=kind),
        ],
        "exclude_kind": [core_event(core, keep, "of-kind", kind=kind)],
        "exclude_reason": [core_event(core, keep, "of-reason", reason=reason)],
        "exclude_component": [
            core_event(core, keep, "by-source", component=component),
            events_v1_event(kube_client, keep, "by-reporting-controller", controller=component),
        ],
        "exclude_message": [
            core_event(core, keep, "leader", message=f"{tag}_0b2c5e3a-9d1f became leader"),
            core_event(core, keep, "stopped", message=f"{tag}_0b2c5e3a-9d1f stopped leading"),
        ],
    }
    kept = [
        core_event(core, keep, "plain"),
        core_event(core, namespaces["near"], "near-namespace"),  # <base>-n-* needs the dash
        core_event(core, keep, "kind-in-lowercase", kind=kind.lower()),  # kinds are exact
        core_event(core, keep, "other-reason", reason=f"{reason}Not"),
        core_event(core, keep, "other-component", component=f"{component}-2"),
        events_v1_event(kube_client, keep, "other-controller", controller=f"{component}-2"),
        core_event(core, keep, "message-goes-on", message=f"{tag}_0b2c5e3a-9d1f became leader, then stopped"),
        core_event(core, keep, "message-of-another", message=f"x{tag}_0b2c5e3a-9d1f became leader"),
    ]
    # One watch of all namespaces delivers in resourceVersion order: once this one is indexed, every
    # event created before it has been through the filter.
    kept.append(core_event(core, keep, "last"))

    ours = list(namespaces.values())
    query = {"terms": {"metadata.namespace": ours}}
    wait.until(
        f"{len(kept)} documents in {keep} and its sibling namespaces",
        lambda: documents(es_client, worker.index_prefix, **query),
        timeout=90,
        ready=lambda found: any(d["metadata"]["name"] == "last" for d in found),
    )
    docs = once_consumed(worker, lambda: documents(es_client, worker.index_prefix, **query))
    assert sorted(d["metadata"]["uid"] for d in docs) == sorted(kept), sorted(d["metadata"]["name"] for d in docs)

    reported = next(d for d in docs if d["metadata"]["name"] == "other-controller")
    # What the filter reads: events.k8s.io's reportingController is core/v1's reportingComponent.
    assert reported["reportingComponent"] == f"{component}-2" and not reported.get("source", {}).get("component")

    text = worker.metrics()
    counted = {name: metric(text, "k8sev_events_filtered_total", filter=name) for name in dropped}
    assert counted == {name: len(uids) for name, uids in dropped.items()}
    # The include rules are not set: nothing is counted under them.
    assert metric(text, "k8sev_events_filtered_total", filter="type") == 0
    assert metric(text, "k8sev_events_filtered_total", filter="include_reason") == 0
