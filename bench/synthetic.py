"""Synthetic Kubernetes Events, as the watch delivers them (raw-topic values: ``streams.core.events.encode_raw``)."""

from __future__ import annotations

import random
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

_NAMESPACES = [f"team-{c}" for c in "abcdefghijklmnop"] + ["kube-system", "monitoring", "ingress", "default"]
NODES = [f"node-{i:02d}" for i in range(24)]
_PULLED = 'Container image "registry.example.com/{app}:1.{n}.3" already present on machine'
_UNHEALTHY = 'Readiness probe failed: Get "http://10.244.{n}.7:8080/healthz": context deadline exceeded'
_UNSCHEDULABLE = (
    "0/24 nodes are available: 24 Insufficient memory. "
    "preemption: 0/24 nodes are available: 24 No preemption victims found for incoming pod."
)
_SCALED = "Scaled up replica set {app}-7d4b9c{n} from 2 to 3"
_MOUNT = 'MountVolume.SetUp failed for volume "config" : configmap "{app}-config" not found'
_CRON = "Saw completed job: {app}-2891{n}, condition: Complete"
# (type, reason, kind, component, message template): what kubelets, controllers and the scheduler say.
_SHAPES: list[tuple[str, str, str, str, str]] = [
    ("Normal", "Scheduled", "Pod", "default-scheduler", "Successfully assigned {ns}/{obj} to {node}"),
    ("Normal", "Pulling", "Pod", "kubelet", 'Pulling image "registry.example.com/{app}:1.{n}.3"'),
    ("Normal", "Pulled", "Pod", "kubelet", _PULLED),
    ("Normal", "Created", "Pod", "kubelet", "Created container: {app}"),
    ("Normal", "Started", "Pod", "kubelet", "Started container {app}"),
    ("Normal", "Killing", "Pod", "kubelet", "Stopping container {app}"),
    ("Warning", "BackOff", "Pod", "kubelet", "Back-off restarting failed container {app} in pod {obj}_{ns}({uid})"),
    ("Warning", "Unhealthy", "Pod", "kubelet", _UNHEALTHY),
    ("Warning", "FailedScheduling", "Pod", "default-scheduler", _UNSCHEDULABLE),
    ("Normal", "SuccessfulCreate", "ReplicaSet", "replicaset-controller", "Created pod: {obj}"),
    ("Normal", "ScalingReplicaSet", "Deployment", "deployment-controller", _SCALED),
    ("Normal", "SuccessfulDelete", "ReplicaSet", "replicaset-controller", "Deleted pod: {obj}"),
    ("Warning", "FailedMount", "Pod", "kubelet", _MOUNT),
    ("Normal", "Completed", "Job", "job-controller", "Job completed"),
    ("Normal", "SawCompletedJob", "CronJob", "cronjob-controller", _CRON),
]
APPS = ["web", "api", "worker", "cache", "search", "billing", "auth", "gateway", "ingest", "report"]


def rfc3339(when: datetime) -> str:
    return when.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def synthetic_event(
    rng: random.Random, uid: str, resource_version: int, when: datetime, count: int = 1
) -> dict[str, Any]:
    """A core/v1 Event as the watch delivers it (managedFields already dropped), about 0.8-1 kB."""
    ns = rng.choice(_NAMESPACES)
    type_, reason, kind, component, template = rng.choice(_SHAPES)
    app = rng.choice(APPS)
    n = rng.randrange(10)
    node = rng.choice(NODES)
    suffix = "".join(rng.choices("bcdfghjklmnpqrstvwxz2456789", k=5))
    obj = f"{app}-7d4b9c{n}-{suffix}" if kind == "Pod" else f"{app}-7d4b9c{n}" if kind == "ReplicaSet" else app
    obj_uid = str(uuid.UUID(int=rng.getrandbits(128), version=4))
    stamp = rfc3339(when)
    first = rfc3339(when - timedelta(seconds=rng.randrange(0, 600) if count > 1 else 0))
    event: dict[str, Any] = {
        "kind": "Event",
        "apiVersion": "v1",
        "metadata": {
            "name": f"{obj}.{rng.getrandbits(64):016x}",
            "namespace": ns,
            "uid": uid,
            "resourceVersion": str(resource_version),
            "creationTimestamp": first,
        },
        "involvedObject": {
            "kind": kind,
            "namespace": ns,
            "name": obj,
            "uid": obj_uid,
            "apiVersion": "v1" if kind == "Pod" else "apps/v1" if kind != "Job" else "batch/v1",
            "resourceVersion": str(rng.randrange(10_000, 9_000_000)),
        },
        "reason": reason,
        "message": template.format(ns=ns, obj=obj, node=node, app=app, n=n, uid=obj_uid),
        "source": {"component": component},
        "firstTimestamp": first,
        "lastTimestamp": stamp,
        "count": count,
        "type": type_,
        "eventTime": None,
        "reportingComponent": component,
        "reportingInstance": node if component == "kubelet" else "",
    }
    if component == "kubelet":
        event["involvedObject"]["fieldPath"] = f"spec.containers{{{app}}}"
        event["source"]["host"] = node
    return event


def synthetic_events(
    total: int, seed: int = 1, versions_per_uid: int = 1, base_rv: int = 1_000_000
) -> Iterator[dict[str, Any]]:
    """``total`` events with unique (uid, resourceVersion); every ``versions_per_uid`` share a uid
    (later versions count up, as a kubelet repeating itself does)."""
    rng = random.Random(seed)
    now = datetime.now(UTC)
    uid = ""
    for i in range(total):
        version = i % versions_per_uid
        if version == 0:
            uid = str(uuid.UUID(int=rng.getrandbits(128), version=4))
        yield synthetic_event(rng, uid, base_rv + i, now, count=version + 1)
