"""The worker with its consumer-lag round every ``BENCH_LAG_INTERVAL`` seconds, counting the rounds in
``bench_lag_rounds_total`` (at /metrics), for ``bench.lag``. Run as ``faust -A bench.lag_app worker``."""

from __future__ import annotations

import os
import time

from prometheus_client import Counter

from streams import pipeline
from streams.agents import lag
from streams.core import loop, metrics

lag.INTERVAL = float(os.environ.get("BENCH_LAG_INTERVAL", str(lag.INTERVAL)))
ROUNDS = Counter("bench_lag_rounds", "Consumer-lag rounds done", registry=metrics.REGISTRY)
ROUND_SECONDS = Counter("bench_lag_round_seconds", "Wall time spent in consumer-lag rounds", registry=metrics.REGISTRY)
_refresh = lag.LagSampler.refresh


async def _counted(self: lag.LagSampler) -> None:
    started = time.monotonic()
    await _refresh(self)
    ROUND_SECONDS.inc(time.monotonic() - started)
    ROUNDS.inc()


lag.LagSampler.refresh = _counted  # type: ignore[method-assign]  # replaced on purpose, before the app is built
loop.choose()
app = pipeline.create_app(pipeline.load_settings())
