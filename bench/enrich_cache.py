"""The enrichment cache's memory (streams/ingest/metadata.py), N objects: ``python -m bench.enrich_cache 10000 100000``.

Objects are shaped like a Deployment's pods (three allow-listed labels, a ReplicaSet owner, plus
labels the allow-list drops); the figure is tracemalloc's growth while filling the cache, per object.
"""

from __future__ import annotations

import sys
import tracemalloc
import uuid

from streams.core.clock import SYSTEM
from streams.ingest import metadata
from streams.ingest.metadata import LabelAllow, MetadataCache, MetaItem, Resource

PODS = Resource("", "v1", "pods")


def pod(i: int) -> dict[str, object]:
    app = f"app-{i % 500}"
    return {
        "metadata": {
            "uid": str(uuid.uuid4()),
            "name": f"{app}-5d9c8b7f4-{i:05x}",
            "namespace": f"ns-{i % 50}",
            "labels": {
                "app": app,
                "app.kubernetes.io/name": app,
                "app.kubernetes.io/instance": f"{app}-prod",
                "pod-template-hash": "5d9c8b7f4",
                "team": "payments",
            },
            "ownerReferences": [
                {"kind": "ReplicaSet", "name": f"{app}-5d9c8b7f4", "uid": str(uuid.uuid4()), "controller": True}
            ],
        }
    }


def measure(n: int) -> float:
    items = [MetaItem("upsert", PODS, 0, pod(i)) for i in range(n)]
    tracemalloc.start()
    before = tracemalloc.get_traced_memory()[0]
    cache = MetadataCache(SYSTEM, size=n, grace=600, allow=LabelAllow(metadata.DEFAULT_LABELS))
    for item in items:
        cache.apply(item)
    grown = tracemalloc.get_traced_memory()[0] - before
    tracemalloc.stop()
    assert len(cache) == n
    return grown / n


def main() -> None:
    for arg in sys.argv[1:] or ["10000", "100000"]:
        n = int(arg)
        per = measure(n)
        print(f"{n} objects: {per:.0f} bytes per object, {per * n / 2**20:.1f} MiB")


if __name__ == "__main__":
    main()
