"""Stream and sink: N events preloaded on the raw topic -> all searchable, against a direct bulk baseline.

1. N synthetic, realistic Event JSON values (unique uid and resourceVersion) are produced to a fresh
   raw topic with aiokafka.
2. Baseline: the same documents (``streams.core.events.to_document``) are bulk-indexed straight into
   another index prefix with the worker's own client (``streams.search.client.SearchClient``: the async
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
import json
import os
import shutil
import subprocess
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
from devstack import scratch, wait
from devstack import worker as runner
from streams.core.events import encode_raw

#: Issue 11's stream goals.
GOAL_RATE = 5_000
GOAL_BULK_RATIO = 0.25
AIM_BULK_RATIO = 0.5
GOAL_CPU_US = 200.0


def parse(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m bench.sink", description=__doc__.split("\n\n")[0])
    parser.add_argument("--events", type=int, default=100_000, help="events preloaded on the raw topic")
    parser.add_argument("--quick", action="store_true", help="20,000 events")
    parser.add_argument(
        "--profile", action="store_true", help="py-spy the worker; summary printed, raw file in bench/out"
    )
    parser.add_argument("--no-baseline", action="store_true", help="skip the direct bulk baseline")
    parser.add_argument("--no-floor", action="store_true", help="skip the framework floor (a no-op Faust agent)")
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
            yield event["metadata"]["uid"].encode(), encode_raw(event)

    started = time.monotonic()
    done = await topics.produce(bootstrap, topic, pairs(), total)
    if done != total:
        raise RuntimeError(f"produced {done} of {total}")
    return time.monotonic() - started


async def baseline(env: dict[str, str], total: int, wait: float) -> dict[str, float]:
    """Bulk-index the same documents directly, as the sink would, one request at a time."""
    from streams.config.settings import Settings
    from streams.core import events
    from streams.search.client import SearchClient
    from streams.search.template import index_template, template_name

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


def floor(stack: dict[str, str], name: str, topic: str, total: int, tmp: Path, wait_s: float) -> dict[str, float]:
    """The framework's floor: ``bench.floor`` (a no-op Faust agent) consuming the same raw topic."""
    out = tmp / "floor.json"
    log_path = bench_stack.OUT / "logs" / f"{name}-floor.log"
    log_path.parent.mkdir(parents=True, exist_ok=True)
    env = {
        **os.environ,
        "BENCH_FLOOR_APP_ID": f"{name}-floor",
        "BENCH_FLOOR_BROKER": f"kafka://{stack['DEVSTACK_KAFKA_BOOTSTRAP']}",
        "BENCH_FLOOR_TOPIC": topic,
        "BENCH_FLOOR_TOTAL": str(total),
        "BENCH_FLOOR_OUT": str(out),
        "BENCH_FLOOR_DATA_DIR": str(tmp / "floor-data"),
        "BENCH_FLOOR_WEB_PORT": str(runner.free_port()),
    }
    started = time.monotonic()
    with log_path.open("ab") as sink_log:
        proc = subprocess.Popen(
            [sys.executable, "-m", "faust", "-A", "bench.floor", "worker", "--loglevel", "warn"],
            cwd=bench_stack.ROOT,
            env=env,
            stdout=sink_log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            start_new_session=True,
        )
    pid = proc.pid
    try:

        def done() -> bool:
            if proc.poll() is not None:
                raise RuntimeError(f"floor app exited ({proc.returncode}); log {log_path}")
            return out.exists() and out.stat().st_size > 0

        wait.until("floor app consumed all", done, timeout=wait_s, interval=0.1, ready=bool)
        result = json.loads(out.read_text())
        cpu_total = procstats.proc_cpu_seconds(pid)
    finally:
        if proc.poll() is None:
            os.killpg(pid, 15)
            try:
                proc.wait(30)
            except subprocess.TimeoutExpired:
                os.killpg(pid, 9)
                proc.wait(10)
    return {
        "seconds": float(result["seconds"]),
        "cpu_seconds": float(result["cpu_seconds"]),
        "cpu_total": cpu_total,
        "wall_total": time.monotonic() - started,
    }


def met(ok: bool) -> str:
    return "met" if ok else "NOT met"


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
    from streams.config.settings import Settings

    settings = Settings.from_env(env)
    report.add_machine(stack)
    report.add("machine", "worker code", bench_stack.code_label())
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

        floor_result: dict[str, float] | None = None
        if not args.no_floor:
            log("baseline: the framework floor (a no-op Faust agent on the same topic)")
            floor_result = floor(stack, name, settings.kafka.raw_topic, total, tmp, timeout)
            section = "baseline (framework floor: no-op Faust agent)"
            floor_result["rate"] = total / floor_result["seconds"] if floor_result["seconds"] else 0.0
            report.add(section, "first to last record (s)", round(floor_result["seconds"], 2))
            report.add(section, "events/s", round(floor_result["rate"]))
            report.add(section, "CPU per event (us)", round(floor_result["cpu_seconds"] / total * 1e6, 1))

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
        per_event_us = per_event * 1e6
        report.add(section, "worker CPU per event (us, first to last searchable)", round(per_event_us, 1))
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
        goals = "goals (issue 11, stream)"
        report.add(goals, f"events/s >= {GOAL_RATE}", f"{round(rate)}: {met(rate >= GOAL_RATE)}")
        cpu_met = met(per_event_us <= GOAL_CPU_US)
        report.add(goals, f"CPU per event <= {GOAL_CPU_US:g} us", f"{per_event_us:.0f}: {cpu_met}")
        if base:
            ratio = rate / base["rate"] if base["rate"] else 0.0
            report.add(
                goals,
                f"pipeline / direct bulk events/s >= {GOAL_BULK_RATIO} (aim {AIM_BULK_RATIO})",
                f"{ratio:.2f}: {met(ratio >= GOAL_BULK_RATIO)}{', aim met' if ratio >= AIM_BULK_RATIO else ''}",
            )
        if floor_result:
            floor_us = floor_result["cpu_seconds"] / total * 1e6
            report.add(goals, "pipeline / framework floor events/s", round(rate / floor_result["rate"], 2))
            report.add(goals, "pipeline CPU per event minus the floor's (us)", round(per_event_us - floor_us, 1))
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
