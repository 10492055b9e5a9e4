"""The worker's own per-event code, timed in-process (no stack, no Kafka, no Faust machinery).

What the profile of bench.sink charges to our code, step by step, on synthetic events: ingest's
encode, dedup's decode-decide-build, the clean record's encode and decode (Faust's JSON codec and
Record), and the sink's bulk body with the Elasticsearch client's serializer. Best of ``--repeat``
runs, in microseconds per event: the figure to compare before and after a change to the hot path,
far steadier than end-to-end runs on a shared machine.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import time
from collections.abc import Callable
from typing import Any

from bench import report, synthetic
from streams.core.events import encode_raw


def _best(fn: Callable[[], Any], count: int, repeat: int) -> float:
    best = float("inf")
    for _ in range(repeat):
        started = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - started)
    return best / count * 1e6


def run(events: int, repeat: int) -> dict[str, float]:
    from elasticsearch.serializer import JSONSerializer

    from streams.agents.dedup import Dedup
    from streams.config.settings import Settings
    from streams.core.records import CleanEvent
    from streams.ingest.publish import Publisher, record_limit
    from streams.search.indexer import Indexer, operations

    settings = Settings.from_env({"K8SEV_APP_ID": "bench-hotpath"})
    source = list(synthetic.synthetic_events(events, seed=5))
    raws = [encode_raw(e) for e in source]
    out: dict[str, float] = {}

    # The ingest agent's publish(), the producer replaced by a send that only encodes.
    class RawTopic:
        async def send(self, *, key: bytes, value: bytes, **_: Any) -> asyncio.Future[Any]:
            done: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
            done.set_result(None)
            return done

    publish = Publisher(RawTopic(), record_limit(settings))

    def publish_all() -> None:
        async def go() -> None:
            for event in source:
                await publish(event)

        asyncio.run(go())

    out["ingest: publish() (encode, send, metrics)"] = _best(publish_all, events, repeat)

    # The dedup agent's own process(), with the table and the producer replaced: recall finds
    # nothing, remember keeps nothing, and a send encodes the record as Faust would.
    encoded: list[bytes] = []

    class CleanTopic:
        async def send(self, *, key: bytes, value: Any, **_: Any) -> asyncio.Future[None]:
            encoded.append(value.dumps())
            done: asyncio.Future[None] = asyncio.get_running_loop().create_future()
            done.set_result(None)  # acknowledged at once: dedup waits for it before remembering
            return done

    class Topics:
        clean = CleanTopic()
        dead_letter = clean  # nothing of the benchmark's input is rejected

    class Memory:
        def recall(self, uid: str) -> None:
            return None

        def remember(self, uid: str, delivered: Any) -> None:
            return None

    agent = Dedup(Topics(), Memory())

    class Message:
        def __init__(self, value: bytes) -> None:
            self.value = value
            self.key = b""
            self.topic, self.partition, self.offset = "raw", 0, 0

    class Event:
        def __init__(self, value: bytes) -> None:
            self.message = Message(value)

    records = [Event(raw) for raw in raws]

    def dedup_step() -> None:
        encoded.clear()

        async def go() -> None:
            for record in records:
                await agent.process(record)

        asyncio.run(go())

    out["dedup: process() (decode, decide, build, encode the clean record)"] = _best(dedup_step, events, repeat)
    assert len(encoded) == events, len(encoded)
    out["clean record: decode (once per consumer)"] = _best(
        lambda: [CleanEvent.loads(b) for b in encoded], events, repeat
    )
    cleans = [CleanEvent.loads(b) for b in encoded]
    serializer = JSONSerializer()
    out["sink: bulk body (operations)"] = _best(lambda: operations(cleans, settings), events, repeat)
    ops = operations(cleans, settings)
    out["sink: client serializes the body"] = _best(lambda: [serializer.dumps(o) for o in ops], events, repeat)

    class Engine:
        engine = "elasticsearch"

        async def put_index_template(self, name: str, body: Any) -> None:
            return None

        async def bulk(self, body: bytes) -> dict[str, Any]:
            # The sink sends NDJSON bytes: an action line and a document line per event.
            return {"items": [{"index": {"status": 201}} for _ in range(body.count(b"\n") // 2)]}

    async def dead(_: Any) -> None:
        return None

    def index_all() -> None:
        async def go() -> None:
            # Made on each run's own loop: its stopping Event binds to the loop that first waits on it.
            indexer = Indexer(settings, Engine(), dead)  # type: ignore[arg-type]
            for start in range(0, len(cleans), settings.stages.bulk_size):
                await indexer.index(cleans[start : start + settings.stages.bulk_size])

        asyncio.run(go())

    out["sink: Indexer.index around the request (no I/O)"] = _best(index_all, events, repeat)
    out["total of the above (a clean record decoded once)"] = sum(out.values())
    return out


def serializers(events: int, repeat: int) -> dict[str, float]:
    """stdlib json against orjson (if installed) on the two hot decodes and the clean encode."""
    import json

    from streams.core.records import CleanEvent

    try:
        import orjson  # type: ignore[import-not-found,unused-ignore]
    except ImportError:
        return {}
    source = list(synthetic.synthetic_events(events, seed=5))
    raws = [encode_raw(e) for e in source]
    from streams.dedup.transform import to_clean

    cleans = [to_clean(e, 1) for e in source]
    data = [c.asdict() for c in cleans]
    blobs = [json.dumps(d).encode() for d in data]
    out: dict[str, float] = {}
    out["raw record decode: json.loads(bytes.decode())"] = _best(
        lambda: [json.loads(r.decode()) for r in raws], events, repeat
    )
    out["raw record decode: orjson.loads(bytes)"] = _best(lambda: [orjson.loads(r) for r in raws], events, repeat)
    out["clean record decode: json.loads + from_data"] = _best(
        lambda: [CleanEvent.from_data(json.loads(b)) for b in blobs], events, repeat
    )
    out["clean record decode: orjson.loads + from_data"] = _best(
        lambda: [CleanEvent.from_data(orjson.loads(b)) for b in blobs], events, repeat
    )
    out["clean record encode: json.dumps(asdict)"] = _best(
        lambda: [json.dumps(c.asdict()) for c in cleans], events, repeat
    )
    out["clean record encode: orjson.dumps(asdict)"] = _best(
        lambda: [orjson.dumps(c.asdict()) for c in cleans], events, repeat
    )
    assert all(orjson.loads(r) == json.loads(r) for r in raws[:100])
    return out


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.hotpath", description=__doc__.split("\n\n")[0])
    parser.add_argument("--events", type=int, default=5000)
    parser.add_argument("--repeat", type=int, default=7)
    args = parser.parse_args(argv)
    figures = report.Report("hotpath", sys.argv[1:] if argv is None else argv)
    for label, value in run(args.events, args.repeat).items():
        figures.add("us per event (best of runs)", label, round(value, 2))
    for label, value in serializers(args.events, args.repeat).items():
        figures.add("serializers: us per event (best of runs)", label, round(value, 2))
    path = figures.save()
    print(figures.render())
    print(f"saved {path}")


if __name__ == "__main__":
    main()
