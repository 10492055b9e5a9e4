"""Drop what a test or benchmark run of the worker left on the local stack.

Every run names its indices, templates, topics and Lease after its app id; this removes them all,
on both search engines, so a long-lived stack does not fill up. Best effort: a server that is down
or a name already gone is not an error.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Mapping, Sequence


def drop_app(
    env: Mapping[str, str], app_id: str, *, prefixes: Sequence[str] = (), namespace: str | None = None
) -> None:
    """Delete indices and templates of ``app_id`` (and ``prefixes``), topics whose name contains
    ``app_id``, its ingest Lease and, if given, ``namespace``."""
    from elasticsearch import Elasticsearch
    from kubernetes import client, config
    from opensearchpy import OpenSearch

    engines = (
        Elasticsearch(env["DEVSTACK_ELASTICSEARCH_URL"], request_timeout=60),
        OpenSearch(env["DEVSTACK_OPENSEARCH_URL"], timeout=60),
    )
    for engine in engines:
        for prefix in (app_id, *prefixes):
            with contextlib.suppress(Exception):
                names = list(engine.indices.get(index=f"{prefix}-*", allow_no_indices=True, expand_wildcards="all"))
                # Elasticsearch refuses wildcard deletes; long name lists are sent in slices.
                for start in range(0, len(names), 50):
                    engine.indices.delete(index=",".join(names[start : start + 50]))
            with contextlib.suppress(Exception):
                engine.indices.delete_index_template(name=f"{prefix}-template")
    with contextlib.suppress(Exception):
        asyncio.run(_drop_topics(env["DEVSTACK_KAFKA_BOOTSTRAP"], app_id))
    with contextlib.suppress(Exception):
        api = config.new_client_from_config(config_file=env["KUBECONFIG"])
        client.CoordinationV1Api(api).delete_namespaced_lease(f"{app_id}-ingest", "default")
        if namespace:
            client.CoreV1Api(api).delete_namespace(namespace)


async def _drop_topics(bootstrap: str, app_id: str) -> None:
    from aiokafka.admin import AIOKafkaAdminClient

    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    try:
        topics = [t for t in await admin.list_topics() if app_id in t]
        if topics:
            await admin.delete_topics(topics)
    finally:
        await admin.close()
