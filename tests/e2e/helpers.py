"""Making events in the real API server and reading them back from the real search engine."""

from __future__ import annotations

import time
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any, TypeVar

from kubernetes import client

T = TypeVar("T")


def now_rfc3339() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def create_event(core: client.CoreV1Api, namespace: str, name: str, *, reason: str = "Tested", type_: str = "Normal",
                 count: int = 1, message: str = "made by a test") -> client.CoreV1Event:  # fmt: skip
    stamp = now_rfc3339()
    body = {
        "metadata": {"name": name, "namespace": namespace},
        "involvedObject": {"kind": "Pod", "namespace": namespace, "name": f"{name}-pod", "apiVersion": "v1"},
        "reason": reason,
        "message": message,
        "type": type_,
        "count": count,
        "firstTimestamp": stamp,
        "lastTimestamp": stamp,
        "source": {"component": "e2e-test"},
    }
    return core.create_namespaced_event(namespace, body)


def repeat_event(core: client.CoreV1Api, namespace: str, name: str, count: int) -> client.CoreV1Event:
    """What a kubelet does when the same thing happens again: count and lastTimestamp grow."""
    patch = {"count": count, "lastTimestamp": now_rfc3339()}
    return core.patch_namespaced_event(name, namespace, patch)


def identity(event: client.CoreV1Event) -> str:
    return f"{event.metadata.uid}:{event.metadata.resource_version}"


def wait_for(what: str, probe: Callable[[], T | None], timeout: float = 90.0, interval: float = 0.5) -> T:
    deadline = time.monotonic() + timeout
    last: T | None = None
    while time.monotonic() < deadline:
        last = probe()
        if last:
            return last
        time.sleep(interval)
    raise AssertionError(f"timed out after {timeout}s waiting for {what}; last: {last!r}")


def documents(engine: Any, prefix: str, **query: Any) -> list[dict[str, Any]]:
    """Every document under ``<prefix>-*``; ``engine`` is an Elasticsearch or an OpenSearch client."""
    engine.indices.refresh(index=f"{prefix}-*", allow_no_indices=True, ignore_unavailable=True)
    body = {"query": query or {"match_all": {}}, "size": 10_000}
    found = engine.search(index=f"{prefix}-*", body=body, allow_no_indices=True, ignore_unavailable=True)
    return [{"_id": h["_id"], "_index": h["_index"], **h["_source"]} for h in found["hits"]["hits"]]


def metric(text: str, name: str, **labels: str) -> float:
    """Sum of a Prometheus metric's samples whose labels include ``labels``."""
    total = 0.0
    for line in text.splitlines():
        if not line.startswith(name) or line.startswith("#"):
            continue
        head, _, value = line.rpartition(" ")
        sample, _, label_text = head.partition("{")
        if sample != name:
            continue
        if all(f'{k}="{v}"' in label_text for k, v in labels.items()):
            total += float(value)
    return total


def wait_for_documents(es: Any, prefix: str, at_least: int, timeout: float = 90.0, settle: float = 2.0
                       ) -> list[dict[str, Any]]:  # fmt: skip
    """Documents once there are ``at_least``; read again after ``settle`` seconds so extras show up."""

    def enough() -> list[dict[str, Any]] | None:
        found = documents(es, prefix)
        return found if len(found) >= at_least else None

    wait_for(f"{at_least} documents under {prefix}-*", enough, timeout)
    time.sleep(settle)
    return documents(es, prefix)
