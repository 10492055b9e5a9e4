"""Making events in the real API server and reading them back from the real search engine."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from typing import Any, TypeVar

from aiokafka import AIOKafkaProducer
from kubernetes import client

from devstack import transient, wait
from devstack.worker import Worker, metric

__all__ = ["create_event", "documents", "identity", "metric", "now_rfc3339", "once_consumed", "repeat_event",
           "search", "wait_for_documents"]  # fmt: skip

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


def documents(engine: Any, prefix: str, **query: Any) -> list[dict[str, Any]]:
    """Every document under ``<prefix>-*``; ``engine`` is an Elasticsearch or an OpenSearch client."""
    engine.indices.refresh(index=f"{prefix}-*", allow_no_indices=True, ignore_unavailable=True)
    body = {"query": query or {"match_all": {}}, "size": 10_000}
    found = engine.search(index=f"{prefix}-*", body=body, allow_no_indices=True, ignore_unavailable=True)
    return [{"_id": h["_id"], "_index": h["_index"], **h["_source"]} for h in found["hits"]["hits"]]


def search(what: str, read: Callable[[], T], timeout: float = 60.0) -> T:
    """``read()`` (a search), waiting out a search engine that cannot answer yet: a daily index just
    created whose shard is still being allocated answers 503, a restarted node refuses connections."""
    return wait.until(what, read, timeout=timeout, ready=lambda _: True, not_yet=transient.search)


def once_consumed(worker: Worker, read: Callable[[], T], timeout: float = 120.0) -> T:
    """``read()`` once nothing more is on its way to the index: the worker's consumer group has
    committed the end offsets of its raw and clean topics (every partition), so every record was
    indexed or dead-lettered. The read refreshes the index itself. For "nothing extra" checks."""
    worker.wait_consumed(timeout)
    return search(f"a search of {worker.index_prefix}-* once consumed", read)


def wait_for_documents(engine: Any, worker: Worker, at_least: int, timeout: float = 90.0) -> list[dict[str, Any]]:
    """Every document of the worker once there are ``at_least``, read again once the worker has
    consumed all its topics, so extras show up."""
    prefix = worker.index_prefix
    wait.until(
        f"{at_least} documents under {prefix}-*",
        lambda: documents(engine, prefix),
        timeout=timeout,
        ready=lambda found: len(found) >= at_least,
        not_yet=transient.search,
    )
    return once_consumed(worker, lambda: documents(engine, prefix))


async def produce(bootstrap: str, topic: str, records: Sequence[tuple[bytes | None, bytes]]) -> None:
    """Write ``(key, value)`` records straight to ``topic``, each acknowledged by all replicas."""
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, acks="all")
    await producer.start()
    try:
        for key, value in records:
            await producer.send(topic, value=value, key=key)
        await producer.flush()
    finally:
        await producer.stop()
