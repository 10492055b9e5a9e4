"""The sink agent through Faust's test_context: a batch the indexer abandons is never acknowledged.

The agent, its stream and its batching are Faust's own, in memory; only the indexer is replaced, by
one that indexes the first batch and abandons the second (what the real one does once the worker
stops while the engine refuses the batch).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Sequence
from typing import Any

import pytest

from streams.agents import sink as sink_stage
from streams.config.settings import Settings
from streams.core import topics
from streams.core.health import Probes
from streams.core.records import CleanEvent
from streams.pipeline import App
from streams.search.indexer import Abandoned


class AbandonsTheSecondBatch:
    batches: list[list[str]]

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        self.batches = AbandonsTheSecondBatch.batches

    async def index(self, batch: Sequence[CleanEvent]) -> None:
        self.batches.append([item.uid for item in batch])
        if len(self.batches) == 2:
            raise Abandoned("the worker is stopping")


def clean(uid: str) -> CleanEvent:
    return CleanEvent(
        uid=uid, resource_version="1", occurrences=1, time=0.0, namespace="ns", type="Normal", reason="R", kind="Pod",
        event={"metadata": {"uid": uid}},
    )  # fmt: skip


async def test_an_abandoned_batch_is_left_unacknowledged_and_logged(
    tmp_path: Any, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    settings = Settings.from_env({"K8SEV_APP_ID": "unit-sink", "K8SEV_DATA_DIR": str(tmp_path), "K8SEV_BULK_SIZE": "1"})
    app = App(
        settings.app_id, store="memory://", datadir=str(tmp_path), autodiscover=False, loop=asyncio.get_running_loop()
    )
    AbandonsTheSecondBatch.batches = []
    monkeypatch.setattr(sink_stage, "Indexer", AbandonsTheSecondBatch)
    sink_stage.install(app, settings, topics.declare(app, settings), None, Probes(), object())  # type: ignore[arg-type]
    caplog.set_level(logging.WARNING, logger=sink_stage.log.name)
    async with app.agents["sink"].test_context() as agent:
        indexed = await agent.put(clean("a"), key=b"a")
        abandoned = await agent.put(clean("b"), key=b"b")
    assert AbandonsTheSecondBatch.batches == [["a"], ["b"]]
    assert indexed.message.acked
    assert not abandoned.message.acked
    assert [r.getMessage() for r in caplog.records if "sink_batch_abandoned" in r.getMessage()] == [
        'event=sink_batch_abandoned documents=1 reason="the worker is stopping"'
    ]
