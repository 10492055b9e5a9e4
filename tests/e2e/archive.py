"""Filling a worker's archive directly: realistic documents bulk-loaded into its daily indices.

For what real events cannot reach in a test's time (10,000+ hits, 100,000 for load times). The
documents are what the sink writes (``streams.core.events.to_document``), in the indices it writes to.
"""

from __future__ import annotations

import random
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

from bench.synthetic import synthetic_event
from streams.core.events import index_name, to_document


def synthetic_documents(
    total: int, cluster: str, span: timedelta, seed: int = 7, end: datetime | None = None
) -> Iterator[tuple[str, str, dict[str, Any]]]:
    """(index suffix date, id, document): ``total`` events spread evenly over ``span`` up to ``end``."""
    rng = random.Random(seed)
    end = end or datetime.now(UTC)
    step = span / total
    for i in range(total):
        when = end - step * i - timedelta(milliseconds=rng.randrange(0, 5))
        uid = f"{cluster}-{i:07d}"
        event = synthetic_event(rng, uid, 1_000 + i, when)
        yield when.strftime("%Y.%m.%d"), f"{uid}:{1_000 + i}", to_document(event, cluster, when)


def bulk_load(client: Any, prefix: str, docs: Iterator[tuple[str, str, dict[str, Any]]], chunk: int = 5000) -> int:
    """Index every document into ``<prefix>-<date>``; refresh at the end. Returns how many."""
    operations: list[dict[str, Any]] = []
    loaded = 0
    for _, doc_id, doc in docs:
        when = datetime.fromisoformat(doc["@timestamp"].replace("Z", "+00:00"))
        operations += [{"index": {"_index": index_name(prefix, when), "_id": doc_id}}, doc]
        if len(operations) >= 2 * chunk:
            loaded += _send(client, operations)
            operations = []
    if operations:
        loaded += _send(client, operations)
    client.indices.refresh(index=f"{prefix}-*")
    return loaded


def _send(client: Any, operations: list[dict[str, Any]]) -> int:
    # Elasticsearch's client takes transport options through options(), OpenSearch's as arguments.
    if hasattr(client, "options"):
        answer = client.options(request_timeout=120).bulk(body=operations)
    else:
        answer = client.bulk(body=operations, request_timeout=120)
    errors = [item for item in answer["items"] if item["index"].get("error")]
    assert not errors, errors[:3]
    return len(operations) // 2


def expected_order(docs: list[tuple[str, str, dict[str, Any]]]) -> list[str]:
    """Ids in the explorer's order: newest first, then uid, then resourceVersion."""
    keyed = [(d["@timestamp"], d["metadata"]["uid"], d["metadata"]["resourceVersion"], i) for _, i, d in docs]
    keyed.sort(key=lambda k: (-_ms(k[0]), k[1], k[2]))
    return [k[3] for k in keyed]


def _ms(stamp: str) -> int:
    return int(datetime.fromisoformat(stamp.replace("Z", "+00:00")).timestamp() * 1000)
