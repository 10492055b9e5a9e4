"""The app factory: ``create_app(settings)`` builds the Faust app and wires the stages in data-path order.

    API server -> ingest -> raw topic -> dedup -> clean topic -> counts (tables) and sink (search engine)
                                                 -> dead letters;  retention; web views

Each stage is one name in three places: its pure logic in ``streams/<stage>.py``, its tables in
``tables/<stage>.py`` and its agents in ``agents/<stage>.py`` (installed as ``streams.tables`` and
``streams.agents``). Nothing here reads the environment: :func:`load_settings` does, when
``faust -A streams worker`` first asks for ``streams.app``.
"""

from __future__ import annotations

import logging
import ssl
import sys

import faust
from faust.transport.drivers import aiokafka as aiokafka_driver

from streams import logs, topics, web
from streams.agents import counts, dedup, ingest, retention, sink
from streams.explorer import web as explorer
from streams.settings import Settings, SettingsError
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


class App(faust.App):
    """Faust's app with an idempotent producer, carrying the settings it was built from."""

    settings: Settings

    # Faust leaves the transports' loop unset, and they then make one of their own that nobody
    # closes; they must run on the app's.
    def _new_transport(self) -> _Transport:
        return _Transport(self.conf.broker_consumer, self, loop=self.loop)

    def _new_producer_transport(self) -> _Transport:
        return _Transport(self.conf.broker_producer, self, loop=self.loop)


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
    declared = topics.declare(app, settings)

    if settings.runs_ingest:
        ingest.install(app, settings, declared)
    counted = None
    if settings.runs_streams:
        dedup.install(app, settings, declared, dedup_tables.declare(app, settings))
        counted = count_tables.declare(app, settings)
        counts.install(app, settings, declared, counted)
        sink.install(app, settings, declared)
        retention.install(app, settings)
    web.install(app, settings, declared, counted)
    explorer.install(app, settings)

    @app.task
    async def announce_settings() -> None:
        # At start-up rather than when built: Faust sets up logging only when the worker starts.
        logs.info(log, "settings_loaded", **settings.describe())

    return app
