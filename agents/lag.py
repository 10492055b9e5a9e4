"""The consumer lag of the stages this worker runs (``streams.ops.lag``), refreshed on a timer for /metrics.

Faust's consumer knows which partitions this worker owns and what it committed; one ListOffsets
request per round asks the brokers for their end offsets (aiokafka's ``highwater`` is only as fresh
as the last fetch, and a partition Faust paused for back-pressure, the one most behind, is not
fetched). Nothing is done per record: the cost is one request per broker every :data:`INTERVAL`.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Mapping
from typing import Any

import faust

from streams.config.settings import Settings
from streams.core import faust_compat, logs, metrics
from streams.ops import lag

log = logging.getLogger(__name__)

#: Seconds between rounds: fresher than any scrape interval, and a sixth of a request per second.
INTERVAL = 5.0
#: A round slower than this is abandoned (a broker slow or gone; the gauges keep the last values),
#: before the next is due: rounds never overlap. A round waits its turn in Faust's consumer thread
#: (about 1.5 s measured on a loaded machine), so it is not the request's own time.
ROUND_TIMEOUT = 4.0


def stages(settings: Settings) -> dict[str, str]:
    """Topic -> the stage that consumes it."""
    return {settings.kafka.raw_topic: "dedup", settings.kafka.clean_topic: "sink"}


class LagSampler:
    """One round: the owned partitions of ``stages``' topics, their end and committed offsets, the lag."""

    def __init__(self, consumer: Callable[[], Any], stages: Mapping[str, str]) -> None:
        #: Asked each round: Faust makes its consumer (and transport) only once the app runs.
        self._consumer = consumer
        self.stages = dict(stages)
        self.failing = False

    async def sample(self) -> dict[str, int]:
        consumer = self._consumer()
        owned = [tp for tp in consumer.assignment() if tp.topic in self.stages]
        ends: Mapping[Any, int] = await consumer.highwaters(*owned) if owned else {}
        # Faust's own record of what it committed (and, after a rebalance, what it found committed).
        known = faust_compat.committed_offsets(consumer)
        committed = {tp: known.get(tp) for tp in owned}
        missing = lag.uncommitted(owned, committed)
        starts: Mapping[Any, int] = await consumer.earliest_offsets(*missing) if missing else {}
        return lag.records_behind(self.stages, ends, committed, starts)

    async def refresh(self) -> None:
        """Set ``k8sev_consumer_lag_records``; on failure keep the last values and say so once."""
        try:
            behind = await asyncio.wait_for(self.sample(), timeout=ROUND_TIMEOUT)
        except Exception as exc:  # noqa: BLE001 - a metric must never take the worker down
            if not self.failing:
                logs.warning(log, "consumer_lag_unavailable", error=f"{type(exc).__name__}: {str(exc)[:200]}")
            self.failing = True
            return
        if self.failing:
            logs.info(log, "consumer_lag_available")
        self.failing = False
        for topic, records in behind.items():
            metrics.CONSUMER_LAG.labels(topic=topic, stage=self.stages[topic]).set(records)


def install(app: faust.App, settings: Settings) -> LagSampler:
    """Refresh the lag of this worker's stages every :data:`INTERVAL` seconds."""
    # No series before the first round: a 0 that nobody measured would read as "caught up".
    sampler = LagSampler(lambda: app.consumer, stages(settings))
    app.timer(interval=INTERVAL, name="consumer_lag")(sampler.refresh)
    return sampler
