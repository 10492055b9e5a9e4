"""The app factory: ``create_app(settings)`` builds the Faust app and wires the stages in data-path order.

    API server -> ingest -> raw topic -> dedup -> clean topic -> sink (search engine)
                                           -> counts (tables), dead letters;  retention; web views

Each stage is a folder of pure logic, ``streams/<stage>/`` (ingest, dedup, counts, search for the
sink, retention), wired to Faust by its agents in ``agents/<stage>.py`` and its tables in
``tables/<stage>.py`` (installed as ``streams.agents`` and ``streams.tables``). Nothing here reads
the environment: :func:`load_settings` does, when ``faust -A streams worker`` first asks for
``streams.app``.
"""

from __future__ import annotations

import asyncio
import logging
import os
import ssl
import sys
import threading
from collections.abc import Awaitable, Callable
from typing import Any

import faust
from faust.transport.drivers import aiokafka as aiokafka_driver
from mode.utils.times import want_seconds

from streams.agents import counts, dedup, ingest, lag, retention, sink
from streams.config.settings import Settings, SettingsError
from streams.core import faust_compat, kafka_admin, logs, topics
from streams.core.health import Probes
from streams.explorer import web as explorer
from streams.ops import liveness, startup, web
from streams.search.client import SearchClient
from streams.tables import counts as count_tables
from streams.tables import dedup as dedup_tables

log = logging.getLogger(__name__)


def load_settings() -> Settings:
    """Settings from the environment; on any invalid value, say which and exit with status 2."""
    try:
        return Settings.from_env()
    except SettingsError as exc:
        print(f"k8s-event-streams: {exc}", file=sys.stderr)
        raise SystemExit(2) from None


class _IdempotentProducer(aiokafka_driver.Producer):
    # Faust turns idempotence on only inside transactions; a retried produce must not duplicate a
    # record on the raw topic either.
    def _settings_extra(self) -> dict[str, object]:
        return {**super()._settings_extra(), "enable_idempotence": True}


class _Transport(aiokafka_driver.Transport):
    Producer = _IdempotentProducer


#: Of the shutdown timeout, the share given to draining the streams (records in flight finishing and
#: being acknowledged); the rest is for committing, releasing the Lease and closing connections.
DRAIN_SHARE = 1 / 3


#: Seconds for closing the search client's connections at the end of shutdown.
SEARCH_CLOSE_WITHIN = 5.0

#: Seconds of polls of the cluster's metadata for the topics just created.
TOPIC_METADATA_WAIT = 20.0


class App(faust.App):
    """Faust's app with an idempotent producer, carrying the settings it was built from.

    Start-up makes its Kafka calls, retried, with probes answering (:mod:`streams.ops.startup`);
    shutdown is bounded by ``K8SEV_SHUTDOWN_TIMEOUT`` whatever the search engine or Kafka do.
    """

    settings: Settings
    #: This worker's /readyz and /healthz registries, handed to every part that reports.
    health: Probes
    #: The worker's one search-engine client: the sink's, retention's, the probe's and the explorer's;
    #: closed when the worker has stopped.
    search: SearchClient
    #: Set when the worker starts to stop: retry loops (the sink's) end instead of waiting.
    stopping: asyncio.Event
    #: The ingest stage's run, when this worker runs it (:func:`streams.agents.ingest.install`), and
    #: its task once started: kept so that shutdown stops it first, by this handle.
    ingest: Callable[[], Awaitable[None]] | None = None
    ingest_task: asyncio.Future[None] | None = None

    async def on_first_start(self) -> None:
        await super().on_first_start()
        liveness.start_watchdog(self.health.liveness)
        self.add_future(liveness.watch(self, self.health.liveness))
        await self._wait_for_kafka()

    async def _wait_for_kafka(self) -> None:
        settings = self.settings
        brokers = ",".join(settings.kafka.brokers)
        try:
            server: startup.StartupServer | None = startup.StartupServer(settings.web.bind, settings.web.port)
        except OSError as exc:
            logs.warning(log, "startup_server_unavailable", port=settings.web.port, error=str(exc))
            server = None
        try:
            failed = await startup.wait_for_kafka(
                self._startup_steps(), brokers=brokers, give_up_after=settings.kafka.startup_timeout, server=server
            )
        except startup.Refused as refused:
            startup.refuse(refused)
            raise
        finally:
            if server is not None:
                server.close()
        if failed is not None:
            startup.give_up(brokers, settings.kafka.startup_timeout, failed)

    def _startup_steps(self) -> list[startup.Step]:
        """Every Kafka call before the worker runs, in order, each retried within the one start-up limit."""
        kafka = self.settings.kafka
        cluster = kafka_admin.Cluster(
            servers=aiokafka_driver.server_list(self.conf.broker, 9092),
            auth=aiokafka_driver.credentials_to_aiokafka_auth(self.conf.broker_credentials),
            request_timeout=startup.ATTEMPT_TIMEOUT,
        )
        config = {"max.message.bytes": str(kafka.max_request_bytes)}
        data = [
            kafka_admin.TopicSpec(n, kafka.topic_partitions, kafka.topic_replicas, config)
            for n in (kafka.raw_topic, kafka.clean_topic, kafka.dead_letter_topic)
        ]
        specs = [*data, *self._changelog_specs()]

        async def create_topics() -> None:
            # Faust would create them itself, but its consumer may subscribe before the new topics
            # are in the cluster's metadata, log "Ignoring missing topic" and then never consume them
            # while every probe says ready (faust-streaming issue 643); and a table whose changelog
            # it finds with no partitions yet crashes its agent with PartitionsMismatch, whose batch
            # then waits unacknowledged while /readyz says 200 (both seen under load here).
            if created := await kafka_admin.create_missing(cluster, specs):
                logs.info(log, "topics_created", topics=",".join(created), partitions=kafka.topic_partitions)

        async def topics_in_metadata() -> None:
            names = [spec.name for spec in specs]
            if missing := await kafka_admin.wait_in_metadata(cluster, names, within=TOPIC_METADATA_WAIT):
                # Retried within the start-up limit: starting without them breaks the agents.
                raise ConnectionError(f"topics not in the cluster's metadata yet: {','.join(sorted(missing))}")

        steps = [
            startup.Step("probe", lambda: kafka_admin.probe(cluster)),
            startup.Step("topics", create_topics, timeout=3 * startup.ATTEMPT_TIMEOUT),
            startup.Step("topic_metadata", topics_in_metadata, timeout=TOPIC_METADATA_WAIT + startup.ATTEMPT_TIMEOUT),
        ]
        if self.settings.runs_ingest:
            steps.append(startup.Step("raw_topic", lambda: ingest.check_raw_topic(cluster, self.settings)))
        return steps

    def _changelog_specs(self) -> list[kafka_admin.TopicSpec]:
        """The tables' changelog topics, as Faust itself would create them (its aiokafka transport's rules)."""
        specs = []
        for table in self.tables.values():
            topic = table.changelog_topic
            flags = ({"compact"} if topic.compacting else set()) | ({"delete"} if topic.deleting else set())
            config = {"cleanup.policy": ",".join(sorted(flags))} if flags else {}
            if topic.retention:
                config["retention.ms"] = str(int(want_seconds(topic.retention) * 1000))
            config.update({key: str(value) for key, value in (topic.config or {}).items()})
            partitions = topic.partitions or self.conf.topic_partitions
            replicas = topic.replicas or self.conf.topic_replication_factor
            specs += [kafka_admin.TopicSpec(name, partitions, replicas, config) for name in topic.topics]
        return specs

    async def on_started_init_extra_tasks(self) -> None:
        await super().on_started_init_extra_tasks()
        self._start_ingest()

    def _start_ingest(self) -> None:
        if self.ingest is not None:
            self.ingest_task = self.add_future(self.ingest())

    async def on_stop(self) -> None:
        self.stopping.set()
        timeout = self.settings.stages.shutdown_timeout
        logs.info(log, "shutdown_started", timeout=f"{timeout:g}s")
        timer = threading.Timer(timeout, _shutdown_overdue, args=(timeout,))
        timer.daemon = True
        timer.start()
        await self._stop_ingest(timeout * DRAIN_SHARE)
        await super().on_stop()

    async def on_shutdown(self) -> None:
        # After the agents, tasks and timers stopped: nothing uses the search client any more.
        await super().on_shutdown()
        try:
            await asyncio.wait_for(self.search.close(), timeout=SEARCH_CLOSE_WITHIN)
        except Exception as exc:  # noqa: BLE001 - the worker is stopping either way
            logs.warning(log, "search_client_close_failed", error=f"{type(exc).__name__}: {exc}"[:300])

    async def _stop_ingest(self, bound: float) -> None:
        """End the ingest task first, through its own shutdown path (its ``finally``: the watch stops,
        in-flight sends are flushed while the producer still runs, the Lease is released with the last
        acknowledged checkpoint). Faust would cancel it only after stopping the producer."""
        task = self.ingest_task
        if task is None or task.done():
            return
        task.cancel()
        _, pending = await asyncio.wait([task], timeout=bound)
        if pending:
            logs.warning(log, "ingest_stop_timeout", seconds=f"{bound:g}")

    async def _consumer_wait_empty(self, consumer: Any, logger: Any) -> None:
        if not self.stopping.is_set():
            # A rebalance: Faust's own wait, so revoked partitions are done with before they move.
            await super()._consumer_wait_empty(consumer, logger)
            return
        # Faust's own wait has no bound, and swallows the cancellation that would impose one
        # (while the search engine is down the sink's records are never acknowledged). The same
        # wait, bounded: records acknowledged meanwhile are committed; the rest is left unacknowledged
        # and uncommitted, for the next owner of the partitions.
        loop = asyncio.get_running_loop()
        drain = self.settings.stages.shutdown_timeout * DRAIN_SHARE
        deadline = loop.time() + drain
        logger.info("Wait for streams (at most %.0fs)...", drain)
        while faust_compat.unacked_count(consumer) and loop.time() < deadline:
            await consumer.commit()
            await asyncio.sleep(0.1)
            faust_compat.forget_acked(consumer)
        if left := faust_compat.unacked_count(consumer):
            logs.warning(log, "shutdown_drain_timeout", seconds=f"{drain:g}", unacknowledged=left)
        await consumer.commit()

    # Faust leaves the transports' loop unset, and they then make one of their own that nobody
    # closes; they must run on the app's.
    def _new_transport(self) -> _Transport:
        return _Transport(self.conf.broker_consumer, self, loop=self.loop)

    def _new_producer_transport(self) -> _Transport:
        return _Transport(self.conf.broker_producer, self, loop=self.loop)


def _shutdown_overdue(timeout: float) -> None:
    # On a thread: the loop may be the thing that is stuck.
    logs.error(log, "shutdown_timeout", seconds=f"{timeout:g}", note="exiting without finishing the shutdown")
    for handler in logging.getLogger().handlers:
        handler.flush()
    os._exit(1)


def broker_credentials(settings: Settings) -> faust.types.auth.CredentialsT | None:
    """Faust's credentials for the configured Kafka security protocol (None: plaintext)."""
    kafka = settings.kafka
    context = None
    if kafka.security_protocol in ("SSL", "SASL_SSL"):
        context = ssl.create_default_context(cafile=str(kafka.ca_file) if kafka.ca_file else None)
        if kafka.cert_file and kafka.key_file:
            context.load_cert_chain(str(kafka.cert_file), str(kafka.key_file))
    if kafka.security_protocol.startswith("SASL"):
        return faust.SASLCredentials(
            username=kafka.username,
            password=kafka.password,
            ssl_context=context,
            mechanism=kafka.sasl_mechanism,
        )
    if context is not None:
        return faust.SSLCredentials(context)
    return None


def create_app(settings: Settings) -> App:
    """The worker's Faust app for ``settings``: topics, tables, agents and views, in data-path order."""
    app = App(
        settings.app_id,
        broker=list(settings.kafka.brokers),
        broker_credentials=broker_credentials(settings),
        # Faust binds web_bind and advertises http://web_host:web_port to the other workers, which
        # ask it for its share of the count tables.
        web_bind=settings.web.bind,
        web_host=settings.web.host,
        web_port=settings.web.port,
        datadir=str(settings.data_dir),
        store=settings.stages.store,
        topic_partitions=settings.kafka.topic_partitions,
        topic_replication_factor=settings.kafka.topic_replicas,
        # Every write waits for all in-sync replicas.
        producer_acks=-1,
        # Fewer, fuller produce requests: 18% less CPU per event in bench.sink, for at most 20 ms
        # more latency (dedup waits for a batch's acknowledgements anyway).
        producer_linger=0.02,
        producer_max_batch_size=1 << 20,
        producer_max_request_size=settings.kafka.max_request_bytes,
        # A worker killed without a goodbye holds its partitions until the group gives up on it.
        broker_session_timeout=settings.kafka.session_timeout,
        broker_rebalance_timeout=settings.kafka.session_timeout,
        # Windowed tables drop closed windows on this period (wall clock).
        table_cleanup_interval=30.0,
        # Every agent, table and view is registered below, in order; nothing is discovered.
        autodiscover=False,
        web_enabled=True,
    )
    app.settings = settings
    app.stopping = asyncio.Event()
    app.health = Probes()
    app.search = SearchClient(settings)
    declared = topics.declare(app, settings)

    if settings.runs_ingest:
        app.ingest = ingest.install(app, settings, declared, app.health)
    counted = None
    if settings.runs_streams:
        counted = count_tables.declare(app, settings)
        dedup.install(app, settings, declared, dedup_tables.declare(app, settings), counts.Counter(counted))
        sink.install(app, settings, declared, app.stopping, app.health, app.search)
        retention.install(app, settings, app.search)
        lag.install(app, settings)
    # The explorer first: in kubernetes auth mode the count views admit through its gate.
    core = explorer.install(app, settings, app.search)
    web.install(app, settings, declared, counted, app.health, app.search, explorer.count_guard(core))

    @app.task
    async def announce_settings() -> None:
        # At start-up rather than when built: Faust sets up logging only when the worker starts.
        logs.info(log, "settings_loaded", event_loop=type(asyncio.get_running_loop()).__module__, **settings.describe())
        if settings.ignored:
            logs.warning(log, "settings_unknown", variables=",".join(settings.ignored), action="ignored")

    return app
