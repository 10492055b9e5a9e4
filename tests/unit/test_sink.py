"""Bulk response handling and the retry loop, with a scripted stand-in for the search client."""

from __future__ import annotations

from typing import Any

from streams.records import CleanEvent
from streams.settings import Settings
from streams.sink import Indexer, Rejection, classify, operations

SETTINGS = Settings.from_env({"K8SEV_CLUSTER": "c1"})


def clean(uid: str, rv: str = "1", time: float = 1_600_000_000.0) -> CleanEvent:
    event = {"metadata": {"uid": uid, "resourceVersion": rv, "namespace": "default"}, "reason": "Started"}
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

    def __init__(self, script: list[Exception | list[int]]) -> None:
        self.script = script
        self.bulks: list[list[str]] = []
        self.templates = 0

    async def put_index_template(self, name: str, body: dict[str, Any]) -> None:
        self.templates += 1

    async def bulk(self, ops: list[dict[str, Any]]) -> dict[str, Any]:
        ids = [op["index"]["_id"] for op in ops[::2]]
        self.bulks.append(ids)
        step = self.script.pop(0)
        if isinstance(step, Exception):
            raise step
        return {"items": [item(s, {"type": "x"} if s >= 400 else None) for s in step]}


async def run(script: list[Exception | list[int]], batch: list[CleanEvent]) -> tuple[ScriptedClient, list[Rejection]]:
    client = ScriptedClient(script)
    rejected: list[Rejection] = []

    async def dead_letter(rejection: Rejection) -> None:
        rejected.append(rejection)

    async def no_sleep(_: float) -> None:
        return None

    await Indexer(SETTINGS, client, dead_letter, sleep=no_sleep).index(batch)  # type: ignore[arg-type]
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
