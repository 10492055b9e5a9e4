"""The framework's floor: a Faust app whose one agent does nothing with the records it consumes.

Run by ``bench.sink`` as ``faust -A bench.floor worker`` on the same preloaded raw topic as the
worker, with the same Faust defaults: what consuming, acking and committing cost before any of our
code runs. When it has seen ``BENCH_FLOOR_TOTAL`` records it writes a JSON line to
``BENCH_FLOOR_OUT``: wall time and process CPU at the first and the last record.
"""

from __future__ import annotations

import json
import os
import time
from pathlib import Path
from typing import Any

import faust

_total = int(os.environ.get("BENCH_FLOOR_TOTAL", "0"))
_out = os.environ.get("BENCH_FLOOR_OUT", "")

app = faust.App(
    os.environ.get("BENCH_FLOOR_APP_ID", "bench-floor"),
    broker=os.environ.get("BENCH_FLOOR_BROKER", "kafka://127.0.0.1:9092"),
    datadir=os.environ.get("BENCH_FLOOR_DATA_DIR", "/tmp/bench-floor"),
    web_port=int(os.environ.get("BENCH_FLOOR_WEB_PORT", "6066")),
    web_host="127.0.0.1",
    web_bind="127.0.0.1",
    producer_acks=-1,
    autodiscover=False,
)
raw = app.topic(
    os.environ.get("BENCH_FLOOR_TOPIC", "bench-floor"),
    key_type=bytes,
    value_type=bytes,
    key_serializer="raw",
    value_serializer="raw",
    # Preloaded by the benchmark: never created or reshaped here.
    internal=False,
)
_state: dict[str, Any] = {"seen": 0}


@app.agent(raw)
async def floor(stream: Any) -> None:
    async for _ in stream:
        _state["seen"] += 1
        if _state["seen"] == 1:
            _state["first"] = (time.monotonic(), time.process_time())
        if _state["seen"] == _total and _out:
            first_wall, first_cpu = _state["first"]
            line = {
                "seen": _total,
                "seconds": time.monotonic() - first_wall,
                "cpu_seconds": time.process_time() - first_cpu,
            }
            # Once, at the end of the run: a blocking write does not distort the figure.
            Path(_out).write_text(json.dumps(line) + "\n")  # noqa: ASYNC240
