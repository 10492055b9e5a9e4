"""The worker's administrative Kafka calls in one place: probe the cluster, create and describe topics.

Each call makes its own short-lived client and closes it, whatever happens: they run at start-up,
inside :func:`streams.ops.startup.wait_for_kafka`'s retry, so a failed attempt must leave nothing
behind. Every request is bounded by ``request_timeout`` (a frozen broker accepts a connection and
never answers). Errors are aiokafka's, raised as they come: the retry logs them and tries again.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.admin.config_resource import ConfigResource, ConfigResourceType
from aiokafka.client import AIOKafkaClient
from aiokafka.errors import TopicAlreadyExistsError

_UNKNOWN_TOPIC = 3


@dataclass(frozen=True)
class Cluster:
    """Where and how to connect: ``host:port`` servers and aiokafka's security keywords."""

    servers: Sequence[str]
    auth: Mapping[str, Any] = field(default_factory=dict)
    #: Seconds per request.
    request_timeout: float = 5.0


@dataclass(frozen=True)
class TopicSpec:
    name: str
    partitions: int
    replicas: int
    config: Mapping[str, str] = field(default_factory=dict)


def _options(cluster: Cluster) -> dict[str, Any]:
    return {
        "bootstrap_servers": list(cluster.servers),
        "request_timeout_ms": int(cluster.request_timeout * 1000),
        **cluster.auth,
    }


@contextlib.asynccontextmanager
async def _client(cluster: Cluster) -> AsyncIterator[AIOKafkaClient]:
    client = AIOKafkaClient(**_options(cluster))
    try:
        await client.bootstrap()
        yield client
    finally:
        await client.close()


@contextlib.asynccontextmanager
async def _admin(cluster: Cluster) -> AsyncIterator[AIOKafkaAdminClient]:
    admin = AIOKafkaAdminClient(**_options(cluster))
    try:
        await admin.start()
        yield admin
    finally:
        await admin.close()


async def probe(cluster: Cluster) -> None:
    """Raise unless a broker answers with the cluster's metadata, brokers and controller included."""
    async with _client(cluster) as client:
        if not client.cluster.brokers() or client.cluster.controller is None:
            raise ConnectionError("the cluster has no controller yet")


async def create_missing(cluster: Cluster, topics: Sequence[TopicSpec]) -> list[str]:
    """Create those of ``topics`` the cluster does not have; the names created (or raced for)."""
    async with _admin(cluster) as admin:
        existing = set(await admin.list_topics())
        missing = [t for t in topics if t.name not in existing]
        if missing:
            new = [NewTopic(t.name, t.partitions, t.replicas, topic_configs=dict(t.config)) for t in missing]
            # Another worker of the deployment may be quicker: then the topic is there, as wanted.
            with contextlib.suppress(TopicAlreadyExistsError):
                await admin.create_topics(new)
    return [t.name for t in missing]


async def wait_in_metadata(cluster: Cluster, names: Iterable[str], *, within: float, interval: float = 0.5) -> set[str]:
    """Poll the cluster's metadata until it has every one of ``names`` with its partitions, at most
    ``within`` seconds; the names still missing then (empty: all there).

    A topic just created can be in the metadata with no partitions yet: a table whose changelog
    Faust sees that way crashes its agent (PartitionsMismatch), so partitions are what counts.
    """
    wanted = set(names)
    loop = asyncio.get_running_loop()
    deadline = loop.time() + within
    async with _client(cluster) as client:
        while True:
            await client.force_metadata_update()
            missing = {name for name in wanted if not client.cluster.partitions_for_topic(name)}
            if not missing or loop.time() + interval > deadline:
                return missing
            await asyncio.sleep(interval)


async def max_message_bytes(cluster: Cluster, topic: str) -> int | None:
    """The topic's ``max.message.bytes``, or None if there is no such topic."""
    async with _admin(cluster) as admin:
        responses = await admin.describe_configs([ConfigResource(ConfigResourceType.TOPIC, topic)])
    for response in responses:
        for error_code, _message, _type, _name, entries in response.resources:
            if error_code == _UNKNOWN_TOPIC:
                return None
            for entry in entries:
                if entry[0] == "max.message.bytes":
                    return int(entry[1])
    return None
