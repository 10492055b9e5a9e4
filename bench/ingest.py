"""Ingest: N events already in the API server -> all on the raw topic; then a steady watch.

1. N events are created in a fresh namespace (concurrent raw HTTP, aiohttp, from another process).
2. Baseline: a plain paginated LIST of that namespace with the worker's own client and call
   (``kubernetes`` CoreV1Api, ``limit=K8SEV_LIST_PAGE_SIZE``, ``_preload_content=False`` and
   ``json.loads``, as ``streams.kube.client`` does): the API server's own serving rate.
3. The worker starts (``K8SEV_NAMESPACES`` = that namespace, so other sessions' events stay out)
   and the clock runs until the raw topic's end offsets add up to N. Start-up (election, LIST of
   the first page) is reported apart from the rate. Peak RSS is the worker's VmHWM.
4. Steady watch: events are created at an offered rate (200/s, then 1,000/s) for ``--duration``
   seconds from another process. For every event the API server confirmed, lag = the raw record's
   Kafka timestamp (set by the worker's producer when it sent it) - the time the create call
   returned. The rate the ingest keeps up with is confirmed events over the time from the first
   create to the last record on the topic.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import shutil
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from bench import kube_writer, procstats, topics
from bench import report as reporting
from bench import stack as bench_stack
from bench.procstats import mib
from bench.report import Report, log, percentile
from devstack import offsets, scratch, transient, wait
from devstack import worker as runner


def parse(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m bench.ingest", description=__doc__.split("\n\n")[0])
    parser.add_argument("--events", type=int, default=20_000, help="events in the API server before the worker starts")
    parser.add_argument("--rates", default="200,1000", help="offered rates of the steady watch, events/s")
    parser.add_argument("--duration", type=float, default=20.0, help="seconds of each steady-watch rate")
    parser.add_argument("--quick", action="store_true", help="2,000 events, 10 s per rate")
    parser.add_argument("--concurrency", type=int, default=64, help="concurrent create requests")
    parser.add_argument("--profile", action="store_true", help="py-spy the worker during the initial LIST")
    parser.add_argument("--env", action="append", default=[], metavar="K8SEV_X=value", help="worker setting override")
    parser.add_argument("--keep", action="store_true", help="leave namespace, topics and indices")
    args = parser.parse_args(argv)
    if args.quick:
        args.events = min(args.events, 2_000)
        args.duration = min(args.duration, 10.0)
    return args


def list_baseline(kubeconfig: str, namespace: str, page_size: int) -> tuple[int, float]:
    """One paginated LIST as the watcher does it: (items, seconds)."""
    api = kube_writer.kube_api(kubeconfig)
    started = time.monotonic()
    token: str | None = None
    total = 0
    for _ in range(1_000_000):  # bounded: a LIST of N items has N / page_size pages
        kwargs: dict[str, Any] = {"limit": page_size, "_preload_content": False, "_request_timeout": (10, 60)}
        if token:
            kwargs["_continue"] = token
        body = json.loads(api.list_namespaced_event(namespace, **kwargs).data)
        total += len(body.get("items") or ())
        token = (body.get("metadata") or {}).get("continue") or None
        if not token:
            break
    return total, time.monotonic() - started


class RawTopicTimes:
    """Consumes the raw topic from its current end: the Kafka timestamp of each record, by uid."""

    def __init__(self, bootstrap: str, topic: str) -> None:
        self.bootstrap = bootstrap
        self.topic = topic
        self.seen: dict[str, float] = {}
        self._consumer: Any = None
        self._task: asyncio.Task[None] | None = None

    async def start(self) -> None:
        from aiokafka import AIOKafkaConsumer

        self._consumer = AIOKafkaConsumer(bootstrap_servers=self.bootstrap, enable_auto_commit=False)
        await self._consumer.start()
        assigned = await offsets.partitions(self._consumer, self.topic)
        self._consumer.assign(assigned)
        await self._consumer.seek_to_end(*assigned)
        for tp in assigned:  # resolve the positions now, before anything new is produced
            await self._consumer.position(tp)
        self._task = asyncio.create_task(self._run())

    async def _run(self) -> None:
        while True:
            batches = await self._consumer.getmany(timeout_ms=200, max_records=5000)
            for records in batches.values():
                for record in records:
                    if record.key is not None:
                        self.seen.setdefault(record.key.decode(), record.timestamp / 1000)

    async def stop(self) -> None:
        if self._task:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
        if self._consumer:
            await self._consumer.stop()


async def steady(
    stack: dict[str, str], settings: Any, namespace: str, rate: float, duration: float, concurrency: int, report: Report
) -> None:
    section = f"steady watch {rate:g}/s offered"
    times = RawTopicTimes(stack["DEVSTACK_KAFKA_BOOTSTRAP"], settings.kafka.raw_topic)
    await times.start()
    try:
        gen = kube_writer.GeneratorProcess.paced(stack["KUBECONFIG"], namespace, rate, duration, concurrency)
        result = await asyncio.to_thread(gen.join, duration + 120)
        wanted = {c.uid: c for c in result.created}

        async def unseen() -> int:
            return len(wanted.keys() - times.seen.keys())

        # Not fatal: what is still missing after 60 s is reported.
        with contextlib.suppress(wait.WaitTimeout):
            await wait.until_async("every created event on the raw topic", unseen, timeout=60, interval=0.2,
                                   ready=lambda left: left == 0)  # fmt: skip
    finally:
        await times.stop()
    lags = [times.seen[uid] - made.confirmed for uid, made in wanted.items() if uid in times.seen]
    missing = len(wanted) - len(lags)
    first_sent = min((c.sent for c in result.created), default=0.0)
    last_record = max((times.seen[uid] for uid in wanted if uid in times.seen), default=first_sent)
    kept_up = len(lags) / (last_record - first_sent) if last_record > first_sent else 0.0
    created_rate = result.rate
    report.add(section, "created (confirmed) events/s", round(created_rate, 1))
    report.add(
        section, "create errors", result.errors if not result.first_error else f"{result.errors} ({result.first_error})"
    )
    report.add(section, "ingested events/s (first create to last record)", round(kept_up, 1))
    report.add(section, "ingested / created", round(kept_up / created_rate, 2) if created_rate else "-")
    for pct in (50, 95, 99):
        report.add(section, f"lag p{pct} (s)", round(percentile(lags, pct), 3))
    report.add(section, "lag max (s)", round(max(lags, default=0.0), 3))
    report.add(section, "not on the topic after 60 s", missing)


def run(args: argparse.Namespace) -> Report:
    stack = bench_stack.stack_env()
    report = Report("ingest", sys.argv[1:])
    name = runner.unique_name("bi")
    namespace = name
    tmp = Path(tempfile.mkdtemp(prefix="bench-ingest-"))
    overrides = dict(item.split("=", 1) for item in args.env)
    env = bench_stack.worker_env(stack, name, tmp, K8SEV_NAMESPACES=namespace, **overrides)
    from streams.config.settings import Settings

    settings = Settings.from_env(env)
    report.add_machine(stack)
    report.add_settings(env)
    report.add("settings", "events", args.events)
    worker: runner.Worker | None = None
    try:
        kube_writer.create_namespace(stack["KUBECONFIG"], namespace)
        log(f"creating {args.events} events in namespace {namespace}")
        made = kube_writer.create_events_fast(stack["KUBECONFIG"], namespace, args.events, args.concurrency)
        report.add("setup", "events created", len(made.created))
        report.add("setup", "create rate (events/s, concurrent HTTP)", round(made.rate))
        if made.errors:
            report.add("setup", "create errors", f"{made.errors} ({made.first_error})")
        total = len(made.created)

        log("baseline: paginated LIST with the worker's client")
        runs = [list_baseline(stack["KUBECONFIG"], namespace, settings.kube.list_page_size) for _ in range(3)]
        listed, seconds = sorted(runs, key=lambda r: r[1])[1]
        report.add("baseline (plain LIST)", "items listed", listed)
        report.add("baseline (plain LIST)", "seconds (median of 3)", round(seconds, 2))
        list_rate = listed / seconds
        report.add("baseline (plain LIST)", "events/s", round(list_rate))

        asyncio.run(
            topics.create_topic(
                stack["DEVSTACK_KAFKA_BOOTSTRAP"], settings.kafka.raw_topic, settings.kafka.topic_partitions
            )
        )
        log("worker: LIST+WATCH into the raw topic")
        worker = bench_stack.start_worker(env)
        sampler = procstats.RssSampler(worker.pid, interval=0.5).start()
        first, last, on_topic, cpu = asyncio.run(
            _wait_offsets(stack, settings.kafka.raw_topic, total, worker, args.profile, name)
        )
        section = "ingest (worker)"
        if last is None or first is None:
            raise RuntimeError(f"ingest: {on_topic} of {total} on the raw topic; log {worker.log}")
        start = worker.started_at
        rate = total / (last - first) if last > first else 0.0
        report.add(section, "first record on the topic after start (s)", round(first - start, 2))
        report.add(section, "all on the topic after start (s)", round(last - start, 2))
        report.add(section, "events/s (first to last record)", round(rate))
        report.add(section, "events/s (worker start to last record)", round(total / (last - start)))
        listed_log = worker.log_events("list_done")
        if listed_log:
            report.add(section, "worker's own LIST (list_done seconds)", listed_log[-1].get("seconds"))
        report.add(section, "worker CPU per event (us)", round(cpu / total * 1e6, 1))
        _, hwm = worker.memory()
        report.add(section, "peak RSS (VmHWM, MiB)", mib(hwm))
        report.add("ratio", "ingest / plain LIST events/s", round(rate / list_rate, 2))

        for rate_text in args.rates.split(","):
            offered = float(rate_text)
            log(f"steady watch at {offered:g} events/s for {args.duration:g} s")
            asyncio.run(steady(stack, settings, namespace, offered, args.duration, args.concurrency, report))
        sampler.stop()
        _, hwm = worker.memory()
        report.add("memory", "peak RSS over the whole run (VmHWM, MiB)", mib(hwm))
        report.add("memory", "RSS at the end (MiB)", mib(worker.memory()[0]))
    finally:
        if worker:
            worker.stop()
        if not args.keep:
            scratch.drop_app(stack, name, namespace=namespace)
        shutil.rmtree(tmp, ignore_errors=True)
    return report


async def _wait_offsets(
    stack: dict[str, str], topic: str, total: int, worker: runner.Worker, profile: bool, name: str
) -> tuple[float | None, float | None, int, float]:
    watcher = topics.OffsetWatcher(stack["DEVSTACK_KAFKA_BOOTSTRAP"], topic)
    await watcher.start()
    first: float | None = None
    cpu_first = 0.0
    profiler = None
    last = {"count": 0, "at": 0.0}

    async def on_topic() -> int:
        nonlocal first, cpu_first, profiler
        worker.check()
        count = last["count"] = await watcher.total()
        last["at"] = time.monotonic()
        if count and first is None:
            first, cpu_first = last["at"], procstats.proc_cpu_seconds(worker.pid)
            if profile:
                from bench.profile import Profiler

                profiler = Profiler(worker.pid, bench_stack.OUT / f"{name}-ingest.pyspy")
        return count

    try:
        try:
            await wait.until_async(
                f"{total} records on {topic}",
                on_topic,
                timeout=max(180.0, total / 50),
                interval=0.1,
                ready=lambda count: count >= total,
                not_yet=transient.kafka,
            )
        except wait.WaitTimeout:
            return first, None, int(last["count"]), 0.0
        return first, last["at"], int(last["count"]), procstats.proc_cpu_seconds(worker.pid) - cpu_first
    finally:
        await watcher.stop()
        if profiler:
            from bench.profile import summarize

            profiler.stop()
            summary = summarize(profiler.path)
            print(summary)
            (bench_stack.OUT / f"{name}-ingest-profile.txt").write_text(summary + "\n")


if __name__ == "__main__":
    reporting.main(parse, run)
