"""The private Faust, mode and aiokafka names :mod:`streams.faust_compat` uses, against the installed packages.

Each test names one of them: after a Faust upgrade, the failing test's name says which name moved
and which compat function to rewrite.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable
from typing import Any

import faust
import pytest
from aiokafka import AIOKafkaConsumer
from aiokafka.admin import AIOKafkaAdminClient
from faust.exceptions import NotReady
from faust.stores import rocksdb
from faust.tables.base import Collection
from faust.transport.drivers import aiokafka as aiokafka_driver

from streams import pipeline
from streams.config.settings import Settings
from streams.core import faust_compat
from streams.pipeline import create_app


def parameters(function: Callable[..., Any]) -> list[str]:
    return list(inspect.signature(function).parameters)


@pytest.fixture
def app() -> pipeline.App:
    return create_app(Settings.from_env({"K8SEV_ES_URL": "http://127.0.0.1:9"}))


async def test_consumer_unacked_messages_and_clean_unacked_messages(app: pipeline.App) -> None:
    consumer = app.consumer
    assert faust_compat.unacked_count(consumer) == 0
    assert parameters(type(consumer)._clean_unacked_messages) == ["self"]
    faust_compat.forget_acked(consumer)


async def test_consumer_committed_offset(app: pipeline.App) -> None:
    committed = faust_compat.committed_offsets(app.consumer)
    # A defaultdict: a partition never committed reads None.
    assert committed.get(faust.types.TP("t", 0)) is None
    assert dict(committed) == {}


async def test_producer_ensure_producer(app: pipeline.App) -> None:
    # Before the producer started, Faust's own "not started" error: the method is there and checks.
    assert parameters(aiokafka_driver.Producer._ensure_producer) == ["self"]
    with pytest.raises(NotReady):
        faust_compat.kafka_producer(app.producer)


async def test_agent_actors(app: pipeline.App) -> None:
    assert app.agents
    for agent in app.agents.values():
        assert faust_compat.agent_actors(agent) == []


def test_table_apply_window_op() -> None:
    assert parameters(Collection._apply_window_op) == ["self", "op", "key", "value", "timestamp"]


def test_rocksdb_store_dbs_and_db_for_partition() -> None:
    assert "_dbs" in rocksdb.Store.__annotations__
    assert parameters(rocksdb.Store._db_for_partition) == ["self", "partition"]
    assert faust_compat.partition_databases(object()) == {}
    store = rocksdb.Store.__new__(rocksdb.Store)
    store._dbs = {0: "db"}
    assert faust_compat.partition_databases(store) == {0: "db"}
    faust_compat.drop_partition_database(store, 0)
    assert faust_compat.partition_databases(store) == {}


def test_transport_topic_config() -> None:
    assert parameters(aiokafka_driver.Transport._topic_config) == ["self", "retention", "compacting", "deleting"]
    assert faust_compat.topic_config(aiokafka_driver.Transport, 60_000, True, True) == {
        "cleanup.policy": "compact,delete",
        "retention.ms": 60_000,
    }
    assert faust_compat.topic_config(aiokafka_driver.Transport, None, None, None) == {}


async def test_app_tasks(app: pipeline.App) -> None:
    names = [task.__name__ for task in faust_compat.app_tasks(app)]
    assert "announce_settings" in names


async def test_aiokafka_consumer_and_admin_client() -> None:
    consumer = AIOKafkaConsumer(bootstrap_servers="127.0.0.1:9")
    assert callable(faust_compat.aiokafka_client(consumer).force_metadata_update)
    await consumer.stop()
    admin = AIOKafkaAdminClient(bootstrap_servers="127.0.0.1:9")
    assert callable(faust_compat.aiokafka_client(admin).cluster.brokers)
    await admin.close()


@pytest.mark.parametrize("name", sorted(faust_compat.APP_OVERRIDES))
def test_app_override_exists_in_faust(name: str) -> None:
    assert parameters(getattr(faust.App, name)) == list(faust_compat.APP_OVERRIDES[name])
    assert name in vars(pipeline.App)


@pytest.mark.parametrize("name", sorted(faust_compat.PRODUCER_OVERRIDES))
def test_producer_override_exists_in_faust(name: str) -> None:
    assert parameters(getattr(aiokafka_driver.Producer, name)) == list(faust_compat.PRODUCER_OVERRIDES[name])


def test_every_private_override_of_the_workers_classes_is_listed() -> None:
    # Listed names are checked against Faust above; here, every Faust name overridden is listed.
    for ours, faust_class, listed in (
        (pipeline.App, faust.App, faust_compat.APP_OVERRIDES),
        (pipeline._IdempotentProducer, aiokafka_driver.Producer, faust_compat.PRODUCER_OVERRIDES),
    ):
        private = {n for n in vars(ours) if n.startswith("_") and not n.startswith("__") and n != "_abc_impl"}
        assert {n for n in private if hasattr(faust_class, n)} == set(listed), ours
