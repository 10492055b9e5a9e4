"""The Faust app: settings validated, topics declared, agents and views discovered.

``faust -A streams worker`` and the ``event-collector`` console script both land here.
"""

from __future__ import annotations

import logging
import ssl
import sys

import faust
from faust.transport.drivers import aiokafka as aiokafka_driver

from streams import logs
from streams.settings import Settings, SettingsError

log = logging.getLogger("streams")


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
    """Faust's app with an idempotent producer."""

    def _new_transport(self) -> _Transport:
        return _Transport(self.conf.broker_consumer, self)

    def _new_producer_transport(self) -> _Transport:
        return _Transport(self.conf.broker_producer, self)


def broker_credentials(settings: Settings) -> faust.types.auth.CredentialsT | None:
    """Faust's credentials for the configured Kafka security protocol (None: plaintext)."""
    protocol = settings.kafka_security_protocol
    context = None
    if protocol in ("SSL", "SASL_SSL"):
        context = ssl.create_default_context(cafile=str(settings.kafka_ca_file) if settings.kafka_ca_file else None)
        if settings.kafka_cert_file and settings.kafka_key_file:
            context.load_cert_chain(str(settings.kafka_cert_file), str(settings.kafka_key_file))
    if protocol.startswith("SASL"):
        return faust.SASLCredentials(
            username=settings.kafka_username,
            password=settings.kafka_password,
            ssl_context=context,
            mechanism=settings.kafka_sasl_mechanism,
        )
    if context is not None:
        return faust.SSLCredentials(context)
    return None


settings = load_settings()

app = App(
    settings.app_id,
    broker=list(settings.brokers),
    broker_credentials=broker_credentials(settings),
    # Faust binds web_bind and advertises http://web_host:web_port to the other workers, which
    # ask it for its share of the count tables.
    web_bind=settings.web_bind,
    web_host=settings.web_host,
    web_port=settings.web_port,
    datadir=str(settings.data_dir),
    topic_partitions=settings.topic_partitions,
    topic_replication_factor=settings.topic_replicas,
    # Every write waits for all in-sync replicas.
    producer_acks=-1,
    # A worker killed without a goodbye holds its partitions until the group gives up on it.
    broker_session_timeout=settings.session_timeout,
    broker_rebalance_timeout=settings.session_timeout,
    # Windowed tables drop closed windows on this period (wall clock).
    table_cleanup_interval=30.0,
    autodiscover=["streams.agents", "streams.tables", "streams.web"],
    web_enabled=True,
)


@app.task
async def announce_settings() -> None:
    # At start-up rather than import: Faust sets up logging only when the worker starts.
    logs.info(log, "settings_loaded", **settings.describe())
