"""The dedup agent through Faust's test_context: decisions, forwarding and dead letters.

Only the outgoing topic sends are replaced (by lists); the agent, its stream and its windowed table
are Faust's own, in memory.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import json
from datetime import UTC, datetime
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from streams.agents import dedup as dedup_stage
from streams.config.settings import Settings
from streams.core import events, topics
from streams.dedup.decide import Seen
from streams.pipeline import App
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

    def acknowledged() -> asyncio.Future[None]:
        # What a send gives back: resolved once Kafka acknowledged the record (here at once).
        done: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        done.set_result(None)
        return done

    async def to_clean(*, key: bytes, value: Any, **_: Any) -> asyncio.Future[None]:
        out.clean.append(value)
        return acknowledged()

    async def to_dead(*, key: bytes | None, value: Any, **_: Any) -> asyncio.Future[None]:
        out.dead.append(value)
        return acknowledged()

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


# --- Every raw record ends as exactly one of: a clean record or a dead letter -------------------

_SCALARS = st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=20)
_ANY_JSON = st.recursive(
    _SCALARS, lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4),
    max_leaves=20,
)  # fmt: skip
_TIMES = st.one_of(
    st.just("2026-11-26T10:00:00Z"), st.just("2026-02-30T10:00:00Z"), st.just("9999-12-31T23:59:59.999999999-23:59"),
    st.text(max_size=30), st.integers(), st.none(),
)  # fmt: skip
_ODD = st.one_of(_ANY_JSON, st.text(max_size=10), st.integers(), st.floats(), st.booleans())


def _deep(depth: int, inner: object) -> object:
    for _ in range(depth):
        inner = [inner] if depth % 2 else {"a": inner}
    return inner


@st.composite
def event_shaped(draw: st.DrawFn) -> object:
    """An Event whose every field may have an odd type, or be missing."""
    meta = draw(
        st.one_of(
            st.fixed_dictionaries(
                {"uid": st.one_of(st.text(min_size=1, max_size=12), st.integers(), st.none(), st.just("")),
                 "resourceVersion": st.one_of(st.integers(0, 10**6).map(str), st.integers(), st.text(max_size=5))},
                optional={"namespace": _ODD, "name": _ODD, "managedFields": _ODD, "labels": _ODD},
            ),
            _ODD,
        )
    )  # fmt: skip
    body = draw(
        st.fixed_dictionaries(
            {"metadata": st.just(meta)},
            optional={
                "count": st.one_of(st.integers(), st.text(max_size=5), st.floats(), st.booleans(), st.none(),
                                   st.integers(0, 10**22).map(str)),
                "series": st.one_of(_ODD, st.fixed_dictionaries({"count": _ODD, "lastObservedTime": _TIMES})),
                "lastTimestamp": _TIMES, "eventTime": _TIMES, "firstTimestamp": _TIMES,
                "involvedObject": _ODD, "reason": _ODD, "type": _ODD, "message": _ODD,
            },
        )
    )  # fmt: skip
    if draw(st.booleans()):
        # Spliced in as text by _encode: json.dumps itself cannot write it.
        body["message"] = f"__deep_{draw(st.integers(90, 3000))}__"
    return body


@st.composite
def mostly_valid(draw: st.DrawFn) -> object:
    """A valid Event with a few fields replaced by odd values (so many records get through to the clean topic)."""
    body = json.loads(raw(draw(st.text(min_size=1, max_size=8)), str(draw(st.integers(1, 10**6)))))
    odd = draw(event_shaped())
    assert isinstance(odd, dict)
    names = sorted(set(odd) - {"metadata"})
    for name in draw(st.lists(st.sampled_from(names), max_size=3, unique=True)) if names else []:
        body[name] = odd[name]
    return body


def _encode(value: object, how: str) -> bytes:
    text = json.dumps(value, ensure_ascii=how == "ascii")
    if isinstance(value, dict) and str(value.get("message", "")).startswith("__deep_"):
        depth = int(value["message"][7:-2])
        text = text.replace(f'"{value["message"]}"', "[" * depth + '"x"' + "]" * depth)
    return text.encode("utf-8", "surrogatepass")


RAW_VALUES = st.one_of(
    st.binary(max_size=300),
    st.builds(_encode, _ANY_JSON, st.sampled_from(["ascii", "utf-8"])),
    st.builds(_encode, event_shaped(), st.sampled_from(["ascii", "utf-8"])),
    st.builds(_encode, mostly_valid(), st.sampled_from(["ascii", "utf-8"])),
    st.builds(_encode, mostly_valid(), st.sampled_from(["ascii", "utf-8"])),
    st.integers(500, 50_000).map(lambda n: b"[" * n + b"]" * n),
    st.integers(500, 50_000).map(lambda n: b'{"a":' * n + b"1" + b"}" * n),
    st.sampled_from([b"NaN", b'{"metadata":{"uid":"u","resourceVersion":"1"},"count":1e999}', b"", b"null"]),
)


_SERIAL = itertools.count()


def _unique(value: bytes) -> bytes:
    """The same record with a uid no other record had (the table outlives one example), so none is
    dropped as a known version."""
    return value.replace(b'"uid": "', f'"uid": "{next(_SERIAL)}-'.encode(), 1)


@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(values=st.lists(RAW_VALUES, min_size=1, max_size=12))
async def test_every_record_becomes_one_clean_record_or_one_dead_letter(
    dedup: Any, sent: Sent, values: list[bytes]
) -> None:
    sent.clean.clear()
    sent.dead.clear()
    values = [_unique(v) for v in values]
    async with dedup.test_context() as agent:
        for value in values:
            await agent.put(value, key=b"k")
    assert len(sent.clean) + len(sent.dead) == len(values), (sent.clean, [d.reason for d in sent.dead])
    assert all(d.reason != "internal_error" or d.detail for d in sent.dead)


async def test_an_exception_in_one_record_dead_letters_it_and_the_next_flows(
    dedup: Any, sent: Sent, monkeypatch: pytest.MonkeyPatch
) -> None:
    real = events.summary

    def poisoned(event: dict[str, Any]) -> Any:
        if event.get("reason") == "Poison":
            raise KeyError("boom")
        return real(event)

    monkeypatch.setattr(events, "summary", poisoned)
    async with dedup.test_context() as agent:
        await agent.put(raw("p", "1", reason="Poison"), key=b"p")
        await agent.put(raw("q", "1"), key=b"q")
    assert [c.uid for c in sent.clean] == ["q"]
    assert [(d.reason, d.detail) for d in sent.dead] == [("internal_error", "KeyError: 'boom'")]


async def test_deeply_nested_json_is_a_dead_letter(dedup: Any, sent: Sent) -> None:
    async with dedup.test_context() as agent:
        await agent.put(b"[" * 100_000 + b"]" * 100_000, key=b"x")
        await agent.put(raw("r", "1", message=_deep(500, "deep")), key=b"r")
        await agent.put(raw("s", "1"), key=b"s")
    assert [c.uid for c in sent.clean] == ["s"]
    assert [d.reason for d in sent.dead] == ["too_deep", "too_deep"]


async def test_a_record_that_would_grow_past_a_kafka_record_on_the_clean_topic_is_a_dead_letter(
    dedup: Any, sent: Sent
) -> None:
    # 900 kB of UTF-8 on the raw topic; Faust writes JSON with \u escapes: six bytes a character.
    body = json.loads(raw("wide", "1"))
    body["message"] = "\u4e2d" * 300_000
    async with dedup.test_context() as agent:
        await agent.put(json.dumps(body, ensure_ascii=False).encode(), key=b"wide")
        await agent.put(raw("narrow", "1"), key=b"narrow")
    assert [c.uid for c in sent.clean] == ["narrow"]
    assert [d.reason for d in sent.dead] == ["too_large"]
    assert "clean record" in sent.dead[0].detail


class Memory:
    """Dedup's memory as a dict: what the batch logic remembers, and when."""

    def __init__(self) -> None:
        self.known: dict[str, Seen] = {}

    def recall(self, uid: str) -> Seen | None:
        return self.known.get(uid)

    def remember(self, uid: str, delivered: Seen) -> None:
        self.known[uid] = delivered


class Event:
    def __init__(self, value: bytes) -> None:
        self.value = value
        self.message = self
        self.key, self.topic, self.partition, self.offset = b"k", "raw", 0, 0


class SlowTopics:
    """Sends whose acknowledgement the test gives (or refuses) by hand."""

    def __init__(self) -> None:
        self.acks: list[asyncio.Future[None]] = []
        self.clean = self.dead_letter = self
        self._sent = asyncio.Event()

    async def send(self, **_: Any) -> asyncio.Future[None]:
        ack: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self.acks.append(ack)
        self._sent.set()
        return ack

    async def sent(self, count: int) -> None:
        while len(self.acks) < count:
            self._sent.clear()
            await self._sent.wait()


async def test_a_batch_is_remembered_only_once_kafka_acknowledged_its_clean_records(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(dedup_stage, "processing", lambda event: contextlib.nullcontext())
    memory, sends = Memory(), SlowTopics()
    stage = dedup_stage.Dedup(sends, memory)
    batch = [Event(raw("a", "10")), Event(raw("a", "12", count=3)), Event(raw("b", "5"))]
    done = asyncio.ensure_future(stage.process_batch(batch))
    await asyncio.wait_for(sends.sent(3), timeout=5)
    assert memory.known == {}, "nothing is known before Kafka acknowledged"
    for ack in sends.acks:
        ack.set_result(None)
    await done
    assert memory.known == {"a": Seen("12", 3), "b": Seen("5", 1)}


async def test_a_batch_whose_send_failed_is_not_remembered_and_the_failure_stops_it(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(dedup_stage, "processing", lambda event: contextlib.nullcontext())
    memory, sends = Memory(), SlowTopics()
    stage = dedup_stage.Dedup(sends, memory)
    done = asyncio.ensure_future(stage.process_batch([Event(raw("a", "10")), Event(raw("b", "5"))]))
    await asyncio.wait_for(sends.sent(2), timeout=5)
    sends.acks[0].set_result(None)
    sends.acks[1].set_exception(RuntimeError("broker gone"))
    with pytest.raises(RuntimeError, match="broker gone"):
        await done
    assert memory.known == {}
