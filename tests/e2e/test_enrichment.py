"""Enrichment on the real stack: a Deployment's pods' events keep their owner chain after the pods are
gone, found by ``kubectl eventlog --for``; a pod's labels by ``-l``; a kind the worker may not watch is
reported and the rest is enriched."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import urllib.parse
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, TypeVar

import pytest
from kubernetes import client
from kubernetes.client.exceptions import ApiException

from devstack import transient, wait
from devstack.worker import Worker
from tests.deploy.rbac import admin_cluster, service_account_token, write_token_kubeconfig
from tests.fixtures.stack import unique_name

pytestmark = [pytest.mark.stack, pytest.mark.e2e]

T = TypeVar("T")
META = "involvedObjectMeta"


class ArchiveBusy(Exception):
    """``kubectl eventlog`` was answered 503: the worker's first bulk has just created the index and its
    shard is not started yet (seen: a search 0.1 s after the index was created)."""


def wait_for(
    what: str, probe: Callable[[], T | None], timeout: float = 120.0, detail: Callable[[], str] | None = None
) -> T:
    def busy(exc: Exception) -> bool:
        return isinstance(exc, ArchiveBusy)

    found = wait.until(
        what, probe, timeout=timeout, not_yet=transient.any_of(transient.http, transient.search, busy), detail=detail
    )
    assert found is not None
    return found


def eventlog(worker: Worker, *argv: str) -> list[dict[str, Any]]:
    """``kubectl eventlog ... -o json`` on the worker's archive: every version, as items."""
    bin_dir = Path(sys.executable).parent
    env = {
        "PATH": f"{bin_dir}:{os.environ.get('PATH', '')}",
        "HOME": os.environ.get("HOME", "/root"),
        "KUBECONFIG": worker.env["KUBECONFIG"],
        "K8SEV_ES_URL": worker.env["K8SEV_ES_URL"],
        "K8SEV_INDEX_PREFIX": worker.index_prefix,
    }
    argv = (*argv, "--since", "1h", "--all-versions", "-o", "json", "--limit", "10000")
    done = subprocess.run(
        [str(bin_dir / "kubectl-eventlog"), *argv], env=env, capture_output=True, text=True, timeout=60
    )
    if done.returncode != 0 and "search engine answered 503" in done.stderr:
        raise ArchiveBusy(done.stderr.strip())
    assert done.returncode == 0, done.stderr
    return list(json.loads(done.stdout)["items"])


def metrics_of(worker: Worker) -> str:
    _, body = worker.get("/metrics")
    return "\n".join(line for line in body.decode().splitlines() if "enrich" in line and not line.startswith("#"))


def deployment(name: str, labels: dict[str, str], replicas: int = 2) -> dict[str, Any]:
    return {
        "metadata": {"name": name},
        "spec": {
            "replicas": replicas,
            "selector": {"matchLabels": {"app": labels["app"]}},
            "template": {
                "metadata": {"labels": labels},
                "spec": {"containers": [{"name": "c", "image": "nginx"}], "nodeSelector": {"type": "kwok"}},
            },
        },
    }


def rolled_out(apps: client.AppsV1Api, namespace: str, name: str) -> Callable[[], bool]:
    def done() -> bool:
        d = apps.read_namespaced_deployment(name, namespace)
        status = d.status
        return bool(
            status.observed_generation
            and status.observed_generation >= d.metadata.generation
            and (status.updated_replicas or 0) == d.spec.replicas
            and (status.ready_replicas or 0) == d.spec.replicas
            and (status.replicas or 0) == d.spec.replicas
        )

    return done


@pytest.fixture
def enriching(make_worker: Any, namespace: str) -> Worker:
    worker: Worker = make_worker(K8SEV_NAMESPACES=namespace, K8SEV_ENRICH="true")
    return worker


def test_a_deployment_rolled_twice_keeps_its_pods_events_after_they_are_gone(
    enriching: Worker, namespace: str, kube_client: client.ApiClient, fake_node: str
) -> None:
    apps, core = client.AppsV1Api(kube_client), client.CoreV1Api(kube_client)
    labels = {"app": "web", "app.kubernetes.io/name": "web", "team": "not-allow-listed"}
    created = apps.create_namespaced_deployment(namespace, deployment("web", labels))
    wait_for("the Deployment rolled out", rolled_out(apps, namespace, "web"))
    for rollout in ("1", "2"):
        patch = {"spec": {"template": {"metadata": {"annotations": {"rollout": rollout}}}}}
        apps.patch_namespaced_deployment("web", namespace, patch)
        wait_for(f"rollout {rollout} done", rolled_out(apps, namespace, "web"))
    replica_sets = {rs.metadata.name: rs.metadata.uid for rs in apps.list_namespaced_replica_set(namespace).items}
    assert len(replica_sets) == 3
    apps.delete_namespaced_deployment("web", namespace, propagation_policy="Background")
    wait_for(
        "every pod and ReplicaSet gone",
        lambda: not core.list_namespaced_pod(namespace).items and not apps.list_namespaced_replica_set(namespace).items,
    )

    seen: list[str] = []

    def pod_events() -> list[dict[str, Any]] | None:
        items = eventlog(enriching, "-n", namespace, "--for", "deployment/web")
        seen[:] = sorted(
            {
                f"{i['involvedObject']['kind']}/{i['involvedObject']['name']} {i['reason']} "
                f"{(i.get(META) or {}).get('ownerRefs', 'NOT ENRICHED')}"
                for i in items
            }
        )
        pods = [i for i in items if i["involvedObject"]["kind"] == "Pod" and META in i]
        # Every ReplicaSet's pods, and a pod's Killing (kwok does not always write one for a rolled-away pod).
        owners = {i[META]["owners"][0]["name"] for i in pods}
        killed = {i[META]["owners"][0]["name"] for i in pods if i["reason"] == "Killing"}
        return items if owners == set(replica_sets) and killed else None

    items = wait_for(
        "the pods' events, by their owner chain",
        pod_events,
        timeout=180,
        detail=lambda: "\n".join([str(replica_sets), metrics_of(enriching), *seen]),
    )
    top = {"kind": "Deployment", "name": "web", "uid": created.metadata.uid}
    enriched = [i for i in items if META in i]
    for item in enriched:
        chain = item[META]["owners"]
        if item["involvedObject"]["kind"] == "Pod":
            assert chain[0]["kind"] == "ReplicaSet" and replica_sets[chain[0]["name"]] == chain[0]["uid"], item
            assert chain[1:] == [top], item
            assert item[META]["labels"] == ["app.kubernetes.io/name=web", "app=web"], item
        elif item["involvedObject"]["kind"] == "ReplicaSet":
            assert chain == [top], item
    reasons = {i["reason"] for i in enriched if i["involvedObject"]["kind"] == "Pod"}
    assert {"Scheduled", "Killing"} <= reasons, reasons
    # The ReplicaSets' own events (SuccessfulCreate, SuccessfulDelete) come with the Deployment's.
    kinds = {i["involvedObject"]["kind"] for i in items}
    assert {"Deployment", "ReplicaSet", "Pod"} <= kinds, kinds
    share = len(enriched) / len(items)
    print(f"ENRICHED {len(enriched)} of {len(items)} events of deployment/web ({share:.0%})")


def test_a_pod_with_labels_is_found_by_its_selector(
    enriching: Worker, namespace: str, kube_client: client.ApiClient, fake_node: str
) -> None:
    core = client.CoreV1Api(kube_client)
    app = unique_name("solo")
    pod = {
        "metadata": {"name": "solo", "labels": {"app": app, "k8s-app": "x"}},
        "spec": {"containers": [{"name": "c", "image": "nginx"}], "nodeSelector": {"type": "kwok"}},
    }
    core.create_namespaced_pod(namespace, pod)
    core.create_namespaced_pod(namespace, {**pod, "metadata": {"name": "other", "labels": {"app": "other"}}})

    def found() -> list[dict[str, Any]] | None:
        items = eventlog(enriching, "-n", namespace, "-l", f"app={app},k8s-app")
        return items if any(i["reason"] == "Scheduled" for i in items) else None

    items = wait_for("the labelled pod's events by selector", found)
    assert {i["involvedObject"]["name"] for i in items} == {"solo"}
    assert all(f"app={app}" in i[META]["labels"] and i[META]["owners"] == [] for i in items)
    assert eventlog(enriching, "-n", namespace, "-l", f"app={app},!k8s-app") == []
    others = eventlog(enriching, "-n", namespace, "-l", f"app!={app}")
    assert others and {i["involvedObject"]["name"] for i in others} == {"other"}


@pytest.fixture
def without_deployments(
    kube_client: client.ApiClient, namespace: str, tmp_path: Path, stack: dict[str, str]
) -> Iterator[Path]:
    """A kubeconfig of a ServiceAccount allowed what the worker needs, with enrichment's list/watch
    on every default kind but Deployments."""
    rbac, core = client.RbacAuthorizationV1Api(kube_client), client.CoreV1Api(kube_client)
    name = unique_name("enrich-sa")
    core.create_namespaced_service_account(namespace, {"metadata": {"name": name}})
    rules = [
        {"apiGroups": [""], "resources": ["events"], "verbs": ["get", "list", "watch"]},
        {"apiGroups": [""], "resources": ["pods", "nodes"], "verbs": ["list", "watch"]},
        {"apiGroups": ["apps"], "resources": ["replicasets", "statefulsets", "daemonsets"], "verbs": ["list", "watch"]},
        {"apiGroups": ["batch"], "resources": ["jobs", "cronjobs"], "verbs": ["list", "watch"]},
    ]
    subject = [{"kind": "ServiceAccount", "name": name, "namespace": namespace}]
    role_ref = {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": name}
    rbac.create_cluster_role({"metadata": {"name": name}, "rules": rules})
    rbac.create_cluster_role_binding({"metadata": {"name": name}, "roleRef": role_ref, "subjects": subject})
    lease_rules = [
        {"apiGroups": ["coordination.k8s.io"], "resources": ["leases"], "verbs": ["get", "create", "update"]}
    ]
    rbac.create_namespaced_role(namespace, {"metadata": {"name": name}, "rules": lease_rules})
    rbac.create_namespaced_role_binding(
        namespace, {"metadata": {"name": name}, "roleRef": {**role_ref, "kind": "Role"}, "subjects": subject}
    )
    server, ca = admin_cluster(stack["KUBECONFIG"])
    path = write_token_kubeconfig(
        tmp_path / "sa.kubeconfig", server, ca, service_account_token(core, name, namespace), namespace
    )
    try:
        yield path
    finally:
        for delete in (rbac.delete_cluster_role_binding, rbac.delete_cluster_role):
            try:
                delete(name)
            except ApiException as exc:
                if exc.status != 404:
                    raise


def test_a_kind_the_worker_may_not_watch_is_reported_and_the_rest_is_enriched(
    make_worker: Any, namespace: str, kube_client: client.ApiClient, fake_node: str, without_deployments: Path
) -> None:
    worker: Worker = make_worker(
        K8SEV_NAMESPACES=namespace,
        K8SEV_ENRICH="true",
        K8SEV_KUBECONFIG=str(without_deployments),
        KUBECONFIG=str(without_deployments),
        K8SEV_LEASE_NAMESPACE=namespace,
    )

    def refused() -> str | None:
        status, body = worker.get("/readyz")
        detail = str(json.loads(body)["checks"]["enrich"]["detail"]) if status == 200 else ""
        return detail if "deployments.apps (forbidden (403)" in detail else None

    detail = wait_for("/readyz naming the refused kind", refused, timeout=60)
    assert detail.startswith("watching 7 of 8; not watched: deployments.apps"), detail
    log = worker.log.read_text()
    assert "event=enrich_watch_refused resource=deployments.apps status=403" in log
    apps = client.AppsV1Api(kube_client)
    apps.create_namespaced_deployment(namespace, deployment("api", {"app": "api"}, replicas=1))

    def pod_enriched() -> list[dict[str, Any]] | None:
        items = eventlog(worker, "-n", namespace, "--for", "replicaset/" + replica_set())
        pods = [i for i in items if i["involvedObject"]["kind"] == "Pod" and META in i]
        return pods or None

    def replica_set() -> str:
        (rs,) = client.AppsV1Api(kube_client).list_namespaced_replica_set(namespace).items
        return str(rs.metadata.name)

    wait_for("a ReplicaSet", lambda: client.AppsV1Api(kube_client).list_namespaced_replica_set(namespace).items)
    pods = wait_for("the pod's events enriched without the Deployment watch", pod_enriched)
    for item in pods:
        # The chain ends at the Deployment, known from the ReplicaSet's reference though not watched.
        assert [o["kind"] for o in item[META]["owners"]] == ["ReplicaSet", "Deployment"], item
        assert item[META]["labels"] == ["app=api"]


def timeline_of(worker: Worker, namespace: str, kind: str, name: str) -> list[dict[str, Any]]:
    """The page's timeline of ``kind/name`` (its JSON API): rows, oldest first."""
    query = urllib.parse.urlencode({"kind": kind, "name": name, "namespace": namespace, "range": "1h"})
    status, body = worker.get(f"/ui/api/timeline?{query}", timeout=30)
    assert status == 200, body
    return list(json.loads(body)["rows"])


def gone(kube_client: client.ApiClient, namespace: str) -> Callable[[], bool]:
    core, batch = client.CoreV1Api(kube_client), client.BatchV1Api(kube_client)
    return lambda: not core.list_namespaced_pod(namespace).items and not batch.list_namespaced_job(namespace).items


def test_a_cronjobs_jobs_pods_keep_their_chain_to_the_cronjob_after_they_are_gone(
    enriching: Worker, namespace: str, kube_client: client.ApiClient, fake_node: str
) -> None:
    batch = client.BatchV1Api(kube_client)
    pod_spec = {
        "containers": [{"name": "c", "image": "busybox"}],
        "nodeSelector": {"type": "kwok"},
        "restartPolicy": "Never",
    }
    cron = {
        "metadata": {"name": "nightly"},
        "spec": {
            # Every minute: the controller creates the first Job within a minute of the CronJob.
            "schedule": "* * * * *",
            "concurrencyPolicy": "Forbid",
            "jobTemplate": {
                "spec": {"backoffLimit": 0, "template": {"metadata": {"labels": {"app": "nightly"}}, "spec": pod_spec}}
            },
        },
    }
    created = batch.create_namespaced_cron_job(namespace, cron)

    def completed_job() -> dict[str, str] | None:
        jobs = batch.list_namespaced_job(namespace).items
        done = {j.metadata.name: j.metadata.uid for j in jobs if (j.status.succeeded or 0) >= 1}
        return done or None

    jobs = wait_for("a Job of the CronJob completed (kwok's pod-complete stage)", completed_job, timeout=150)
    batch.delete_namespaced_cron_job("nightly", namespace, propagation_policy="Background")
    wait_for("the CronJob's Jobs and pods gone", gone(kube_client, namespace))

    seen: list[str] = []

    def pod_events() -> list[dict[str, Any]] | None:
        items = eventlog(enriching, "-n", namespace, "--for", "cronjob/nightly")
        seen[:] = sorted(
            f"{i['involvedObject']['kind']}/{i['involvedObject']['name']} {i['reason']} "
            f"{(i.get(META) or {}).get('ownerRefs', 'NOT ENRICHED')}"
            for i in items
        )
        # Completed (kwok's, a second after the pod runs): its pod is cached by then. A Scheduled
        # written at once may come before the pod's own watch notification and pass unenriched.
        completed = [
            i for i in items if i["involvedObject"]["kind"] == "Pod" and META in i and i["reason"] == "Completed"
        ]
        kinds = {i["involvedObject"]["kind"] for i in items}
        return items if completed and {"CronJob", "Job"} <= kinds else None

    items = wait_for(
        "the Job's pods' events, by their owner chain", pod_events, timeout=120, detail=lambda: "\n".join(seen)
    )
    top = {"kind": "CronJob", "name": "nightly", "uid": created.metadata.uid}
    pods = [i for i in items if i["involvedObject"]["kind"] == "Pod" and META in i]
    for item in pods:
        job, *rest = item[META]["owners"]
        assert job["kind"] == "Job" and jobs.get(job["name"]) == job["uid"], item
        assert rest == [top], item
        assert item[META]["labels"] == ["app=nightly"], item
    for item in items:
        if item["involvedObject"]["kind"] == "Job" and META in item:
            assert item[META]["owners"] == [top], item
    assert {i["involvedObject"]["kind"] for i in items} <= {"CronJob", "Job", "Pod"}

    rows = timeline_of(enriching, namespace, "CronJob", "nightly")
    pod_rows = [r for r in rows if r["kind"] == "Pod"]
    # Every pod the command found by its chain, also on the timeline (later events may add more).
    assert {r["name"] for r in pod_rows} >= {i["involvedObject"]["name"] for i in pods}, rows
    assert all(r["owners"][0].startswith("Job/") and r["owners"][1:] == ["CronJob/nightly"] for r in pod_rows), rows
    assert {r["kind"] for r in rows} >= {"CronJob", "Job", "Pod"}, rows


def test_a_statefulsets_pods_keep_their_chain_after_they_are_gone(
    enriching: Worker, namespace: str, kube_client: client.ApiClient, fake_node: str
) -> None:
    apps, core = client.AppsV1Api(kube_client), client.CoreV1Api(kube_client)
    labels = {"app": "db", "app.kubernetes.io/name": "db"}
    sts = {
        "metadata": {"name": "db"},
        "spec": {
            "replicas": 2,
            "serviceName": "db",
            "podManagementPolicy": "Parallel",
            "selector": {"matchLabels": {"app": "db"}},
            "template": {
                "metadata": {"labels": labels},
                "spec": {"containers": [{"name": "c", "image": "postgres"}], "nodeSelector": {"type": "kwok"}},
            },
        },
    }
    created = apps.create_namespaced_stateful_set(namespace, sts)

    def ready() -> bool:
        status = apps.read_namespaced_stateful_set("db", namespace).status
        return (status.ready_replicas or 0) == 2

    wait_for("the StatefulSet's two pods ready", ready)
    apps.delete_namespaced_stateful_set("db", namespace, propagation_policy="Background")
    wait_for("the StatefulSet's pods gone", lambda: not core.list_namespaced_pod(namespace).items)

    seen: list[str] = []

    def pod_events() -> list[dict[str, Any]] | None:
        items = eventlog(enriching, "-n", namespace, "--for", "statefulset/db")
        seen[:] = sorted(
            f"{i['involvedObject']['kind']}/{i['involvedObject']['name']} {i['reason']} "
            f"{(i.get(META) or {}).get('ownerRefs', 'NOT ENRICHED')}"
            for i in items
        )
        # Started (kwok's, once the pod runs) rather than Scheduled, which may come before the pod's
        # own watch notification and pass unenriched.
        started = {
            i["involvedObject"]["name"]
            for i in items
            if i["involvedObject"]["kind"] == "Pod" and META in i and i["reason"] == "Started"
        }
        return items if started == {"db-0", "db-1"} else None

    items = wait_for("the pods' events, by their owner chain", pod_events, timeout=120, detail=lambda: "\n".join(seen))
    top = {"kind": "StatefulSet", "name": "db", "uid": created.metadata.uid}
    pods = [i for i in items if i["involvedObject"]["kind"] == "Pod" and META in i]
    for item in pods:
        assert item[META]["owners"] == [top], item
        assert item[META]["labels"] == ["app.kubernetes.io/name=db", "app=db"], item
    assert "StatefulSet" in {i["involvedObject"]["kind"] for i in items}

    rows = timeline_of(enriching, namespace, "StatefulSet", "db")
    pod_rows = [r for r in rows if r["kind"] == "Pod"]
    assert {r["name"] for r in pod_rows} == {"db-0", "db-1"}, rows
    assert all(r["owners"] == ["StatefulSet/db"] for r in pod_rows), rows
    assert "StatefulSet" in {r["kind"] for r in rows}, rows
