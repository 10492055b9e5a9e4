"""The worker with a poison hook, for the liveness test: a raw record keyed ``poison`` crashes the
dedup agent's actor, and its supervisor does not restart it (``ForfeitOneForOneSupervisor``), as
when Faust gives up on an actor. Run with ``faust -A tests.e2e.poison_app worker``."""

from __future__ import annotations

from typing import Any

from mode.supervisors import ForfeitOneForOneSupervisor

from streams import pipeline
from streams.agents import dedup
from streams.ops import liveness

#: Short, so the test waits seconds rather than the production bound.
liveness.AGENT_RESTART_BOUND = 3.0

_process_batch = dedup.Dedup.process_batch


async def _poisoned(self: dedup.Dedup, batch: Any) -> None:
    if any(event.message.key == b"poison" for event in batch):
        raise RuntimeError("poisoned on purpose by the test")
    await _process_batch(self, batch)


dedup.Dedup.process_batch = _poisoned  # type: ignore[method-assign]  # replaced on purpose, before the app is built
app = pipeline.create_app(pipeline.load_settings())
app.agents["dedup"].supervisor_strategy = ForfeitOneForOneSupervisor
