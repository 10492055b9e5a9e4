"""The ingest agent: Kubernetes Events -> the raw topic, keyed by uid, value the Event JSON.

Every worker with ``K8SEV_INGEST=true`` takes part in the election for the ingest Lease; only the
holder watches (see :mod:`streams.ingest.election`). :class:`streams.ingest.controller.IngestController` owns it all on
the loop; this module wires it to Faust (the producer), the real Kubernetes client, and the
worker's shutdown. The raw value is the Event as the API server returned it, ``managedFields``
dropped: the document the seed's Logstash pipeline reads; an Event over the producer's limit is
cut to fit (:mod:`streams.ingest.truncate`). With ``K8SEV_ENRICH=true`` the value gains one top-level field,
``involvedObjectMeta``, from the leader's metadata cache (:mod:`streams.ingest.metadata`): added here because
the cache lives with the leader, and so Logstash reading the raw topic indexes the same documents.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from typing import Any

import faust

from streams.config.settings import Settings
from streams.core import clock, kafka_admin, logs, metrics
from streams.core.health import Probes
from streams.core.topics import Topics
from streams.ingest import metadata
from streams.ingest.controller import IngestController
from streams.ingest.election import Elector, LeaseTimings, Message
from streams.ingest.filters import EventFilter
from streams.ingest.publish import Publisher, record_limit
from streams.ingest.watch import WatchSettings
from streams.kube.client import KubernetesApi
from streams.ops import startup

log = logging.getLogger(__name__)

#: How long shutdown may take for ingest: the last acks, the Lease release, the threads.
STOP_WITHIN = 10.0


async def check_raw_topic(cluster: kafka_admin.Cluster, settings: Settings) -> None:
    """Refuse to start (:class:`streams.ops.startup.Refused`, exit 2) if the existing raw topic refuses
    records as large as the producer sends.

    A start-up step (:mod:`streams.ops.startup`): a failure to ask is raised, and retried.
    """
    wanted = settings.kafka.max_request_bytes
    topic = settings.kafka.raw_topic
    allowed = await kafka_admin.max_message_bytes(cluster, topic)
    if allowed is not None and allowed < wanted:
        message = (
            f"the raw topic {topic!r} allows records of {allowed} bytes (max.message.bytes), less than "
            f"K8SEV_KAFKA_MAX_REQUEST_BYTES={wanted}: raise the topic's max.message.bytes or lower the setting"
        )
        logs.error(log, "raw_topic_limit_too_small", topic=topic, allowed=allowed, wanted=wanted)
        # A settings error, as load_settings reports them: before Faust started anything to clean up.
        raise startup.Refused(message, status=2)
    logs.info(log, "raw_topic_checked", topic=topic, max_message_bytes=allowed or "created by the worker")


def enrichment_of(settings: Settings, api: KubernetesApi, health: Probes) -> metadata.Enrichment | None:
    wanted = settings.enrich
    if not wanted.enabled:
        return None
    logs.info(log, "enrich_enabled", resources=",".join(wanted.resources), cache_size=wanted.cache_size)
    return metadata.Enrichment(
        asyncio.get_running_loop(),
        api,
        clock.SYSTEM,
        metadata.EnrichSettings(
            resources=tuple(metadata.parse_resource(r) for r in wanted.resources),
            labels=metadata.LabelAllow(wanted.labels),
            cache_size=wanted.cache_size,
            grace=wanted.deleted_grace,
            page_size=settings.kube.list_page_size,
        ),
        health=health,
    )


def install(app: faust.App, settings: Settings, topics: Topics, health: Probes) -> Callable[[], Awaitable[None]]:
    """The ingest stage's run, for the app to start as a task and to stop first at shutdown."""
    keep = EventFilter.of(settings.kube)
    publish = Publisher(topics.raw, record_limit(settings))

    def filtered(name: str) -> None:
        metrics.EVENTS_FILTERED.labels(filter=name).inc()

    async def ingest() -> None:
        if not settings.stages.ingest:
            logs.info(log, "ingest_disabled", reason="K8SEV_INGEST=false")
            return
        api = KubernetesApi.from_kubeconfig(settings.kube.kubeconfig)
        kube = settings.kube
        enrichment = enrichment_of(settings, api, health)
        send: Any = publish
        if enrichment is not None:
            enrich = enrichment.enrich

            async def send(event: dict[str, Any]) -> asyncio.Future[Any] | None:
                return await publish(await enrich(event))

        controller = IngestController(
            asyncio.get_running_loop(),
            api,
            clock.SYSTEM,
            scopes=kube.namespaces,
            watch=WatchSettings(
                page_size=kube.list_page_size,
                watch_timeout=kube.watch_timeout,
                idle_timeout=kube.watch_idle_timeout,
                stall_after=kube.watch_stall_after,
                event_ttl=kube.event_ttl,
            ),
            capacity=settings.stages.ingest_queue,
            publish=send,
            keep=keep,
            on_filtered=filtered,
            health=health,
        )
        lease = settings.lease
        post = controller.post
        if enrichment is not None:
            # Composed beside the controller: both follow the same elector's terms, on the loop.
            both = (controller.post, enrichment.post)

            def post(message: Message) -> None:
                for receiver in both:
                    receiver(message)

            enriching = asyncio.ensure_future(enrichment.run())
        controller.elect(
            Elector(
                api,
                clock.SYSTEM,
                namespace=lease.namespace,
                name=lease.name,
                identity=lease.identity,
                timings=LeaseTimings(lease.duration, lease.renew_deadline, lease.retry_period),
                post=post,
                checkpoint_of=controller.checkpoint_of,
            )
        )
        app.ingest_controller = controller
        try:
            await controller.run()
        finally:
            # Cancelled at shutdown: release the Lease with the last acknowledged checkpoint, bounded.
            deadline = clock.SYSTEM.monotonic() + STOP_WITHIN
            if enrichment is not None:
                enriching.cancel()
                await enrichment.stop(deadline)
            await controller.stop(deadline)

    return ingest
