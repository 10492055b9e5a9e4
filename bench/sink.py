"""Stream and sink: N events preloaded on the raw topic -> all searchable, against a direct bulk baseline.

1. N synthetic, realistic Event JSON values (unique uid and resourceVersion) are produced to a fresh
   raw topic with aiokafka.
2. Baseline: the same documents (``streams.events.to_document``) are bulk-indexed straight into
   another index prefix with the worker's own client (``streams.search.SearchClient``: the async
   Elasticsearch client), in batches of ``K8SEV_BULK_SIZE``, one request at a time as the sink
   sends them, under the same index template (refresh interval included).
3. The worker starts with ``K8SEV_INGEST=false`` and reads the topic from the beginning: dedup,
   counts and sink. The clock stops when Elasticsearch's ``_count`` (refreshed documents: what a
   search sees) reaches N.

Throughput on both sides is N over the time from the first to the last document searchable (worker
start-up is reported apart). Worker CPU per event (``/proc``) is the figure least moved by the other
load on the machine; ``--profile`` records the worker with py-spy over the same stretch.
"""

from __future__ import annotations

import argparse
import asyncio
import shutil
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from bench import procstats, search, synthetic, topics
from bench import report as reporting
from bench import stack as bench_stack
from bench.procstats import mib
from bench.report import Report, log
from devstack import scratch
from devstack import worker as runner


def parse(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m bench.sink", description=__doc__.split("\n\n")[0])
    parser.add_argument("--events", type=int, default=100_000, help="events preloaded on the raw topic")
    parser.add_argument("--quick", action="store_true", help="20,000 events")
    parser.add_argument(
        "--profile", action="store_true", help="py-spy the worker; summary printed, raw file in bench/out"
    )
    parser.add_argument("--no-baseline", action="store_true", help="skip the direct bulk baseline")
    parser.add_argument("--env", action="append", default=[], metavar="K8SEV_X=value", help="worker setting override")
    parser.add_argument("--keep", action="store_true", help="leave the topics and indices (for a look)")
    parser.add_argument("--timeout", type=float, default=0, help="seconds to wait for all documents (0: from N)")
    args = parser.parse_args(argv)
    if args.quick:
        args.events = min(args.events, 20_000)
    return args


async def preload(bootstrap: str, topic: str, partitions: int, total: int) -> float:
    await topics.create_topic(bootstrap, topic, partitions)

    def pairs() -> Any:
        for event in synthetic.synthetic_events(total, seed=11):
            yield event["metadata"]["uid"].encode(), synthetic.encode(event)

    started = time.monotonic()
    done = await topics.produce(bootstrap, topic, pairs(), total)
    if done != total:
        raise RuntimeError(f"produced {done} of {total}")
    return time.monotonic() - started


async def baseline(env: dict[str, str], total: int, wait: float) -> dict[str, float]:
    """Bulk-index the same documents directly, as the sink would, one request at a time."""
    from streams import events
    from streams.search import SearchClient, index_template, template_name
    from streams.settings import Settings

    settings = Settings.from_env(env)
    batches: list[list[dict[str, Any]]] = []
    ops: list[dict[str, Any]] = []
    for event in synthetic.synthetic_events(total, seed=11):
        when = events.event_time(event)
        assert when is not None
        ops.append(
            {"index": {"_index": events.index_name(settings.search.index_prefix, when), "_id": events.doc_id(event)}}
        )
        ops.append(events.to_document(event, settings.kube.cluster, when))
        if len(ops) >= 2 * settings.stages.bulk_size:
            batches.append(ops)
            ops = []
    if ops:
        batches.append(ops)
    client = SearchClient(settings)
    es = search.es_client({"DEVSTACK_ELASTICSEARCH_URL": settings.search.urls[0]})
    try:
        await client.put_index_template(template_name(settings), index_template(settings))
        started = time.monotonic()
        errors = 0
        for batch in batches:
            response = await client.bulk(batch)
            errors += sum(1 for item in response.get("items", []) if next(iter(item.values()))["status"] >= 300)
        sent = time.monotonic()
        first, last, count = await asyncio.to_thread(
            search.wait_count, es, settings.search.index_prefix, total, wait, 0.1
        )
    finally:
        await client.close()
    if last is None:
        raise RuntimeError(f"baseline: {count} of {total} documents searchable after {wait}s")
    return {
        "seconds": last - started,
        "bulk_seconds": sent - started,
        "errors": errors,
        "first_searchable": (first or last) - started,
    }


def run(args: argparse.Namespace) -> Report:
    stack = bench_stack.stack_env(("kafka", "elasticsearch"))
    report = Report("sink", sys.argv[1:])
    name = runner.unique_name("bs")
    base_prefix = f"{name}b"
    total = args.events
    timeout = args.timeout or max(300.0, total / 100)
    tmp = Path(tempfile.mkdtemp(prefix="bench-sink-"))
    overrides = dict(item.split("=", 1) for item in args.env)
    env = bench_stack.worker_env(stack, name, tmp, K8SEV_INGEST="false", **overrides)
    from streams.settings import Settings

    settings = Settings.from_env(env)
    report.add_machine(stack)
    report.add_settings(env)
    report.add("settings", "events", total)
    worker: runner.Worker | None = None
    try:
        log(f"producing {total} events to {settings.kafka.raw_topic}")
        seconds = asyncio.run(
            preload(stack["DEVSTACK_KAFKA_BOOTSTRAP"], settings.kafka.raw_topic, settings.kafka.topic_partitions, total)
        )
        report.add("preload", "produce rate (aiokafka, events/s)", round(total / seconds))

        base: dict[str, float] | None = None
        if not args.no_baseline:
            log("baseline: direct bulk with the worker's client")
            base_env = {**env, "K8SEV_INDEX_PREFIX": base_prefix}
            base = asyncio.run(baseline(base_env, total, timeout))
            rate = total / base["seconds"]
            report.add("baseline (direct bulk)", "all searchable after (s)", round(base["seconds"], 2))
            report.add("baseline (direct bulk)", "bulk requests done after (s)", round(base["bulk_seconds"], 2))
            report.add("baseline (direct bulk)", "events/s (first request to last searchable)", round(rate))
            report.add("baseline (direct bulk)", "events/s (bulk requests alone)", round(total / base["bulk_seconds"]))
            report.add("baseline (direct bulk)", "refused items", int(base["errors"]))
            base["rate"] = rate
            scratch.drop_app(stack, base_prefix)

        log("pipeline: worker with K8SEV_INGEST=false")
        es = search.es_client(stack)
        worker = bench_stack.start_worker(env)
        sampler = procstats.RssSampler(worker.pid, interval=0.5).start()
        profiler = None
        at_first: dict[str, Any] = {"cpu": 0.0, "io": (0.0, 0.0), "count": 0}

        def first_seen(count: int) -> None:
            nonlocal profiler
            at_first.update(
                cpu=procstats.proc_cpu_seconds(worker.pid), io=procstats.proc_times(worker.pid), count=count
            )
            if args.profile:
                from bench.profile import Profiler

                profiler = Profiler(worker.pid, bench_stack.OUT / f"{name}-sink.pyspy")

        first, last, count = search.wait_count(es, name, total, timeout, 0.25, check=worker.check, on_first=first_seen)
        cpu_first, io_first, count_first = at_first["cpu"], at_first["io"], at_first["count"]
        cpu_last = procstats.proc_cpu_seconds(worker.pid)
        io_last = procstats.proc_times(worker.pid)
        if profiler:
            profiler.stop()
        sampler.stop()
        _, hwm = worker.memory()
        if last is None or first is None:
            raise RuntimeError(f"pipeline: {count} of {total} documents searchable after {timeout}s; log {worker.log}")
        start = worker.started_at
        rate = total / (last - first) if last > first else 0.0
        section = "pipeline (worker)"
        report.add(section, "first document searchable after start (s)", round(first - start, 2))
        report.add(section, "all searchable after start (s)", round(last - start, 2))
        report.add(section, "events/s (first to last searchable)", round(rate))
        report.add(section, "events/s (worker start to last searchable)", round(total / (last - start)))
        per_event = (cpu_last - cpu_first) / max(1, total - count_first)
        report.add(section, "worker CPU per event (us, first to last searchable)", round(per_event * 1e6, 1))
        report.add(
            section, "worker CPU use (cores, same stretch)", round((cpu_last - cpu_first) / max(1e-9, last - first), 2)
        )
        report.add(section, "peak RSS (VmHWM, MiB)", mib(hwm))
        user = io_last[0] - io_first[0]
        kernel = io_last[1] - io_first[1]
        report.add(section, "kernel share of worker CPU", f"{100 * kernel / max(1e-9, user + kernel):.0f}%")
        metrics = worker.get("/metrics")[1].decode(errors="replace")
        report.add(section, "dead letters", runner.metric(metrics, "k8sev_events_rejected_total"))
        report.add(section, "dedup dropped", runner.metric(metrics, "k8sev_dedup_dropped_total"))
        report.add(section, "documents once the worker consumed all (expect N)", search.count_once_consumed(es, worker))
        worker.stop()
        if base:
            report.add(
                "ratio",
                "pipeline / baseline events/s (goal >= 0.8)",
                round(rate / base["rate"], 2) if base["rate"] else "-",
            )
        if profiler:
            from bench.profile import summarize

            summary = summarize(profiler.path)
            print(summary)
            (bench_stack.OUT / f"{name}-sink-profile.txt").write_text(summary + "\n")
            report.add("profile", "raw py-spy recording", str(profiler.path))
    finally:
        if worker:
            worker.stop()
        if not args.keep:
            scratch.drop_app(stack, name, prefixes=[base_prefix])
        shutil.rmtree(tmp, ignore_errors=True)
    return report


if __name__ == "__main__":
    reporting.main(parse, run)
