"""The topics start-up creates before Faust starts: the data path's and every table's changelog, as Faust would."""

from __future__ import annotations

from typing import Any

from faust.transport.drivers.aiokafka import Transport
from mode.utils.times import want_seconds

from streams.config.settings import Settings
from streams.core import faust_compat
from streams.pipeline import create_app


def test_every_changelog_is_created_with_the_partitions_and_config_faust_would_give_it() -> None:
    app = create_app(Settings.from_env({"K8SEV_ES_URL": "http://127.0.0.1:9", "K8SEV_TOPIC_PARTITIONS": "4"}))
    specs = {spec.name: spec for spec in app._changelog_specs()}
    tables = list(app.tables.values())
    assert tables and set(specs) == {t.changelog_topic.get_topic_name() for t in tables}
    for table in tables:
        topic = table.changelog_topic
        spec = specs[topic.get_topic_name()]
        # Faust's own rule (its aiokafka transport's), so a change of Faust's shows here by name.
        retention = int(want_seconds(topic.retention) * 1000) if topic.retention else None
        expected: dict[str, Any] = faust_compat.topic_config(Transport, retention, topic.compacting, topic.deleting)
        expected.update(topic.config or {})
        assert dict(spec.config) == {k: str(v) for k, v in expected.items()}
        # A changelog with other partitions than its source topic crashes the agent (PartitionsMismatch).
        assert spec.partitions == 4 == table.partitions
