"""The dedup agent through Faust's test_context: decisions, forwarding and dead letters.

Only the outgoing topic sends are replaced (by lists); the agent, its stream and its windowed table
are Faust's own, in memory.
"""

from __future__ import annotations

import asyncio
import json
from datetime import UTC, datetime
from typing import Any

import pytest

from streams import topics
from streams.agents import dedup as dedup_stage
from streams.pipeline import App
from streams.settings import Settings
from streams.tables.dedup import DedupMemory


def raw(uid: str, rv: str, count: int = 1, **extra: Any) -> bytes:
    body = {
        "metadata": {"uid": uid, "resourceVersion": rv, "namespace": "ns1", "name": uid},
        "involvedObject": {"kind": "Pod", "name": "p"},
        "reason": "BackOff",
        "type": "Warning",
        "count": count,
        "lastTimestamp": "2026-11-26T10:00:00Z",
        **extra,
    }
    return json.dumps(body).encode()


class Sent:
    def __init__(self) -> None:
        self.clean: list[Any] = []
        self.dead: list[Any] = []


@pytest.fixture
async def stage(tmp_path: Any) -> tuple[Any, topics.Topics]:
    """The dedup stage alone on an app of its own: its topics, its table, its agent.

    Async, so the app takes the test's running loop instead of making one of its own.
    """
    settings = Settings.from_env({"K8SEV_APP_ID": "unit-dedup", "K8SEV_DATA_DIR": str(tmp_path)})
    app = App(
        settings.app_id, store="memory://", datadir=str(tmp_path), autodiscover=False, loop=asyncio.get_running_loop()
    )
    declared = topics.declare(app, settings)
    agent = dedup_stage.install(app, settings, declared, DedupMemory(app, settings))
    return agent, declared


@pytest.fixture
def dedup(stage: tuple[Any, topics.Topics]) -> Any:
    return stage[0]


@pytest.fixture
def sent(monkeypatch: pytest.MonkeyPatch, stage: tuple[Any, topics.Topics]) -> Sent:
    out = Sent()
    clean_topic, dead_letter_topic = stage[1].clean, stage[1].dead_letter

    async def to_clean(*, key: bytes, value: Any, **_: Any) -> None:
        out.clean.append(value)

    async def to_dead(*, key: bytes | None, value: Any, **_: Any) -> None:
        out.dead.append(value)

    monkeypatch.setattr(clean_topic, "send", to_clean)
    monkeypatch.setattr(dead_letter_topic, "send", to_dead)
    return out


async def test_each_version_once_with_its_occurrences(dedup: Any, sent: Sent) -> None:
    async with dedup.test_context() as agent:
        for value in (raw("a", "10"), raw("a", "10"), raw("a", "12", count=4), raw("a", "11", count=2), raw("b", "5")):
            await agent.put(value, key=json.loads(value)["metadata"]["uid"].encode())
    assert [(c.uid, c.resource_version, c.occurrences) for c in sent.clean] == [
        ("a", "10", 1),
        ("a", "12", 3),
        ("b", "5", 1),
    ]
    first = sent.clean[0]
    assert (first.namespace, first.type, first.reason, first.kind) == ("ns1", "Warning", "BackOff", "Pod")
    assert first.time == datetime(2026, 11, 26, 10, tzinfo=UTC).timestamp()
    assert sent.dead == []


async def test_bad_records_become_dead_letters_and_the_rest_flows(dedup: Any, sent: Sent) -> None:
    async with dedup.test_context() as agent:
        await agent.put(b"{not json", key=b"x")
        await agent.put(raw("c", "1"), key=b"c")
        await agent.put(
            raw("d", "1", lastTimestamp="yesterday", metadata={"uid": "d", "resourceVersion": "1"}), key=b"d"
        )
    assert [c.uid for c in sent.clean] == ["c"]
    assert [(d.reason, d.stage, d.encoding) for d in sent.dead] == [
        ("invalid_json", "dedup", "utf-8"),
        ("no_event_time", "dedup", "utf-8"),
    ]
    assert sent.dead[0].original == "{not json"
