"""Bulk response handling and the retry loop, with a scripted stand-in for the search client."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import pytest

from streams.config.settings import Settings
from streams.core import letters
from streams.core.health import Health, Probes
from streams.core.records import CleanEvent, DeadLetter
from streams.search.indexer import Abandoned, Indexer, Rejection, classify, operations

SETTINGS = Settings.from_env({"K8SEV_CLUSTER": "c1"})


def clean(uid: str, rv: str = "1", time: float = 1_600_000_000.0, message: str = "") -> CleanEvent:
    event = {
        "metadata": {"uid": uid, "resourceVersion": rv, "namespace": "default"},
        "reason": "Started",
        "message": message,
    }
    return CleanEvent(
        uid=uid, resource_version=rv, occurrences=1, time=time, namespace="default", type="Normal",
        reason="Started", kind="Pod", event=event,
    )  # fmt: skip


def test_operations_pair_an_action_with_each_document() -> None:
    ops = operations([clean("a", "7"), clean("b", "9", time=1_600_041_600.0)], SETTINGS)
    assert ops[0] == {"index": {"_index": "k8s-event-2020.09.13", "_id": "a:7"}}
    assert ops[1]["cluster"] == "c1" and ops[1]["@timestamp"] == "2020-09-13T12:26:40.000Z"
    assert ops[2]["index"] == {"_index": "k8s-event-2020.09.14", "_id": "b:9"}


def item(status: int, error: object = None) -> dict[str, Any]:
    return {"index": {"status": status, **({"error": error} if error else {})}}


def test_classify_splits_retries_from_refusals() -> None:
    response = {"items": [item(201), item(429), item(400, {"type": "mapper_parsing_exception"}), item(503), item(200)]}
    retry, refused = classify(response, 5)
    assert retry == [1, 3]
    assert [(p, s) for p, s, _ in refused] == [(2, 400)]
    assert "mapper_parsing_exception" in refused[0][2]


def test_classify_retries_everything_when_the_response_does_not_line_up() -> None:
    assert classify({"items": [item(201)]}, 3) == ([0, 1, 2], [])


class ScriptedClient:
    """Answers bulk calls from a script: an exception to raise, or statuses per document."""

    engine = "elasticsearch"

    def __init__(self, script: list[Any]) -> None:
        self.script = script
        self.bulks: list[list[str]] = []
        self.sizes: list[int] = []
        self.templates = 0

    async def put_index_template(self, name: str, body: dict[str, Any]) -> None:
        self.templates += 1

    async def bulk(self, body: bytes) -> dict[str, Any]:
        lines = [json.loads(line) for line in body.splitlines()]
        ids = [op["index"]["_id"] for op in lines[::2]]
        self.bulks.append(ids)
        self.sizes.append(len(body))
        step = self.script.pop(0)
        if callable(step):
            step = step(ids)
        if isinstance(step, Exception):
            raise step
        return {"items": [item(s, {"type": "x"} if s >= 400 else None) for s in step]}


async def run(
    script: list[Any], batch: list[CleanEvent], settings: Settings = SETTINGS
) -> tuple[ScriptedClient, list[Rejection]]:
    client = ScriptedClient(script)
    rejected: list[Rejection] = []

    async def dead_letter(rejection: Rejection) -> None:
        rejected.append(rejection)

    async def no_sleep(_: float) -> None:
        return None

    await Indexer(settings, client, dead_letter, sleep=no_sleep).index(batch)  # type: ignore[arg-type]
    return client, rejected


async def test_connection_errors_retry_the_whole_batch() -> None:
    script: list[Exception | list[int]] = [ConnectionError("down"), ConnectionError("down"), [201, 201]]
    client, rejected = await run(script, [clean("a"), clean("b")])
    assert client.bulks == [["a:1", "b:1"]] * 3
    assert rejected == []


async def test_only_throttled_items_are_sent_again_and_refused_ones_dead_lettered() -> None:
    batch = [clean("a"), clean("b"), clean("c")]
    client, rejected = await run([[201, 429, 400], [201]], batch)
    assert client.bulks == [["a:1", "b:1", "c:1"], ["b:1"]]
    assert [(r.event.uid, r.status) for r in rejected] == [("c", 400)]
    assert client.templates == 1


class HttpError(Exception):
    """What both engines' clients raise for an HTTP error status (``status_code``)."""

    def __init__(self, status: int) -> None:
        super().__init__(f"HTTP {status}")
        self.status_code = status


def test_a_batch_goes_as_requests_of_at_most_bulk_bytes() -> None:
    settings = Settings.from_env({"K8SEV_BULK_BYTES": "2000"})
    batch = [clean(f"u{i}", message="m" * 500) for i in range(7)]
    client, _ = asyncio.run(run([lambda ids: [201] * len(ids)] * 7, batch, settings))
    assert sum(len(ids) for ids in client.bulks) == 7 and len(client.bulks) > 1
    assert max(client.sizes) <= 2000
    one_big = [clean("big", message="m" * 5000)]
    client, _ = asyncio.run(run([[201]], one_big, settings))
    assert client.bulks == [["big:1"]]  # alone, however large


async def test_a_413_splits_the_request_until_the_one_document_refused_is_dead_lettered() -> None:
    def engine(ids: list[str]) -> Exception | list[int]:
        return HttpError(413) if "huge:1" in ids else [201] * len(ids)

    batch = [clean("a"), clean("b"), clean("huge"), clean("c"), clean("d")]
    client, rejected = await run([engine] * 20, batch)
    indexed = {i for ids, size in zip(client.bulks, client.sizes, strict=True) if "huge:1" not in ids for i in ids}
    assert indexed == {"a:1", "b:1", "c:1", "d:1"}
    assert [(r.event.uid, r.status) for r in rejected] == [("huge", 413)]


@pytest.mark.parametrize("status", [401, 403, 404])
async def test_an_item_refused_for_a_reason_no_document_can_fix_is_retried_not_dead_lettered(status: int) -> None:
    client, rejected = await run([[201, status], [status], [201]], [clean("a"), clean("b")])
    assert client.bulks == [["a:1", "b:1"], ["b:1"], ["b:1"]]
    assert rejected == []


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


async def test_readyz_fails_once_the_sink_has_been_failing_longer_than_the_threshold() -> None:
    clock = Clock()
    health = Probes(readiness=Health(clock))
    settings = Settings.from_env({"K8SEV_SINK_UNREADY_AFTER": "60s"})
    seen: list[tuple[bool, str]] = []

    async def sleep(delay: float) -> None:
        clock.now += 25
        ready, checks = health.readiness.report()
        seen.append((ready, str(checks["sink"]["detail"])))

    client = ScriptedClient([HttpError(403)] * 3 + [[201]])
    indexer = Indexer(settings, client, lambda r: asyncio.sleep(0), sleep=sleep, clock=clock, health=health)  # type: ignore[arg-type]
    await indexer.index([clean("a")])
    assert [ready for ready, _ in seen] == [True, True, False]
    assert "http_403 (permanent)" in seen[-1][1]
    assert health.readiness.report()[1]["sink"]["ok"] is True


async def test_stopping_ends_the_retrying_and_leaves_the_batch_unacknowledged() -> None:
    stopping = asyncio.Event()
    client = ScriptedClient([ConnectionError("down")] * 1000)

    async def sleep(delay: float) -> None:
        await asyncio.sleep(3600)

    indexer = Indexer(SETTINGS, client, lambda r: asyncio.sleep(0), sleep=sleep, stopping=stopping)  # type: ignore[arg-type]
    task = asyncio.ensure_future(indexer.index([clean("a")]))
    for _ in range(100):  # a few loop turns: the first attempt fails and the back-off starts
        await asyncio.sleep(0)
    assert client.bulks
    stopping.set()
    with pytest.raises(Abandoned):
        await asyncio.wait_for(task, timeout=2)


def test_a_letter_for_a_refused_document_near_1_mib_fits_a_kafka_record() -> None:
    for filler in ("x", "\u00e9", "\u4e2d", "\x01", "\U0001f600"):
        event = clean("big", message=filler * (1_040_000 // len(filler.encode()))).event
        value = json.dumps(event).encode()
        letter = letters.build("sink", "http_400", "e" * 10_000, value=value, key="k" * 10**6, topic="t")
        assert len(DeadLetter.of(letter).dumps()) < 1_000_000, filler
        assert letter.truncated and letter.size > 1_000_000


async def test_a_clean_record_with_fields_of_the_wrong_type_costs_its_own_dead_letter() -> None:
    broken = clean("x")
    broken.time = "not a number"  # type: ignore[assignment]
    odd = clean("y")
    odd.event = ["not", "an", "object"]  # type: ignore[assignment]
    client, rejected = await run([[201]], [broken, clean("a"), odd])
    assert client.bulks == [["a:1"]]
    assert [(r.event.uid, r.reason) for r in rejected] == [("x", "internal_error"), ("y", "internal_error")]
    assert "TypeError" in rejected[0].error


async def test_while_stopping_requests_that_succeed_go_on() -> None:
    stopping = asyncio.Event()
    stopping.set()
    client = ScriptedClient([[201, 201]])
    await Indexer(SETTINGS, client, lambda r: asyncio.sleep(0), stopping=stopping).index([clean("a"), clean("b")])  # type: ignore[arg-type]
    assert client.bulks == [["a:1", "b:1"]]
