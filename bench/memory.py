"""Memory: the worker's RSS while many events pass, and with many events live in the API server.

Stream: a producer process writes ``--events`` synthetic events (unique uid and resourceVersion,
or ``--versions-per-uid`` versions of each uid) to the raw topic as fast as it can, while a worker
with ``K8SEV_INGEST=false`` runs dedup, counts and the sink over them. RSS is sampled every second
with the number of documents searchable, until all are.

Live: ``--live`` events are created in a fresh namespace, then a worker LISTs and WATCHes it
(``K8SEV_NAMESPACES``) until all are searchable, RSS sampled likewise.

Goal: flat, under 300 MiB. "Flat" is judged by the growth over the second half of the stream.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import multiprocessing
import shutil
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from bench import kube_writer, search, stores, synthetic, topics
from bench import report as reporting
from bench import stack as bench_stack
from bench.procstats import mib
from bench.report import Report, log
from devstack import scratch, transient, wait
from devstack import worker as runner
from streams.core.events import encode_raw

GOAL_MIB = 300.0


def parse(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m bench.memory", description=__doc__.split("\n\n")[0])
    parser.add_argument("--events", type=int, default=1_000_000, help="events through the raw topic (0: skip)")
    parser.add_argument("--versions-per-uid", type=int, default=1, help="versions sharing one uid (1: all unique)")
    parser.add_argument("--live", type=int, default=100_000, help="events live in the API server (0: skip)")
    parser.add_argument("--quick", action="store_true", help="100,000 through the topic, 10,000 live")
    parser.add_argument("--env", action="append", default=[], metavar="K8SEV_X=value", help="worker setting override")
    parser.add_argument("--replay", type=int, default=10_000, help="after kill -9: raw records replayed (0: no kill)")
    parser.add_argument("--keep", action="store_true", help="keep the topics, index and data directories")
    args = parser.parse_args(argv)
    if args.quick:
        args.events = min(args.events, 100_000)
        args.live = min(args.live, 10_000)
    return args


def _producer_main(bootstrap: str, topic: str, total: int, versions: int) -> None:
    def pairs() -> Any:
        for event in synthetic.synthetic_events(total, seed=23, versions_per_uid=versions):
            yield event["metadata"]["uid"].encode(), encode_raw(event)

    asyncio.run(topics.produce(bootstrap, topic, pairs(), total))


def follow(
    report: Report, section: str, worker: runner.Worker, es: Any, prefix: str, total: int, timeout: float
) -> list[tuple[float, int, int]]:
    """Sample (seconds, RSS, documents searchable) every second until all ``total`` are searchable."""
    samples: list[tuple[float, int, int]] = []

    def sample() -> int:
        worker.check()
        rss, _ = worker.memory()
        count = search.es_count(es, prefix)
        samples.append((time.monotonic() - worker.started_at, rss, count))
        return count

    # Not fatal: a shortfall at the deadline is reported.
    with contextlib.suppress(wait.WaitTimeout):
        wait.until(f"{total} documents searchable", sample, timeout=timeout, interval=1.0,
                   ready=lambda count: count >= total, not_yet=transient.search)  # fmt: skip
    count = samples[-1][2] if samples else 0
    _, hwm = worker.memory()
    if count < total:
        report.add(section, "NOT all searchable before the timeout", f"{count} of {total}")
    elapsed = samples[-1][0] if samples else 0.0
    report.add(section, "all searchable after (s)", round(elapsed, 1))
    report.add(section, "peak RSS (VmHWM, MiB)", mib(hwm))
    for share in (0.1, 0.25, 0.5, 0.75, 1.0):
        at = next((s for s in samples if s[2] >= share * total), samples[-1] if samples else (0, 0, 0))
        report.add(section, f"RSS at {int(share * 100)}% searchable (MiB)", mib(at[1]))
    half = [s for s in samples if s[2] >= total / 2]
    if len(half) >= 2 and half[-1][2] > half[0][2]:
        slope = least_squares_slope([(float(c), float(r)) for _, r, c in half]) * 100_000
        report.add(section, "RSS slope over the second half (MiB per 100k events, least squares)", mib(slope))
        growth = (half[-1][1] - half[0][1]) / (half[-1][2] - half[0][2]) * 100_000
        report.add(section, "growth over the second half (MiB per 100k events, end points)", mib(growth))
    report.add(section, f"goal: peak under {GOAL_MIB:g} MiB", "met" if mib(hwm) < GOAL_MIB else "NOT met")
    return samples


def least_squares_slope(points: list[tuple[float, float]]) -> float:
    """dy/dx of the least-squares line through ``points`` (0 for fewer than two distinct x)."""
    n = len(points)
    mean_x = sum(x for x, _ in points) / n
    mean_y = sum(y for _, y in points) / n
    var = sum((x - mean_x) ** 2 for x, _ in points)
    return sum((x - mean_x) * (y - mean_y) for x, y in points) / var if var else 0.0


def stream(args: argparse.Namespace, stack: dict[str, str], report: Report, tmp: Path) -> None:
    name = runner.unique_name("bm")
    overrides = dict(item.split("=", 1) for item in args.env)
    env = bench_stack.worker_env(stack, name, tmp, K8SEV_INGEST="false", **overrides)
    from streams.config.settings import Settings

    settings = Settings.from_env(env)
    section = f"stream: {args.events} events, {args.versions_per_uid} version(s) per uid"
    report.add_settings(env)
    worker: runner.Worker | None = None
    producer = None
    try:
        asyncio.run(
            topics.create_topic(
                stack["DEVSTACK_KAFKA_BOOTSTRAP"], settings.kafka.raw_topic, settings.kafka.topic_partitions
            )
        )
        context = multiprocessing.get_context("spawn")
        producer = context.Process(
            target=_producer_main,
            args=(stack["DEVSTACK_KAFKA_BOOTSTRAP"], settings.kafka.raw_topic, args.events, args.versions_per_uid),
            daemon=True,
        )
        producer.start()
        worker = bench_stack.start_worker(env)
        report.add(section, "table store (K8SEV_STORE)", settings.stages.store)
        log(f"stream: {args.events} events through {settings.kafka.raw_topic}")
        samples = follow(
            report, section, worker, search.es_client(stack), name, args.events, timeout=max(600.0, args.events / 100)
        )
        _save_samples(name, samples)
        if args.replay and samples and samples[-1][2] >= args.events:
            restart_and_replay(report, worker, stack, settings.kafka.raw_topic, name, args.events, args.replay)
    finally:
        if producer is not None:
            producer.join(5)
            if producer.is_alive():
                producer.kill()
        if worker:
            worker.stop()
        if not args.keep:
            scratch.drop_app(stack, name)


READY_GOAL_S = 60.0


def restart_and_replay(
    report: Report, worker: runner.Worker, stack: dict[str, str], topic: str, prefix: str, total: int, replay: int
) -> None:
    """kill -9 with every uid in state, time until ready again, then replay the last ``replay`` raw
    records: all must be dropped as duplicates and no document may appear."""
    section = f"kill -9 with {total} uids in state, then a replay of the last {replay} raw records"
    es = search.es_client(stack)
    bootstrap = stack["DEVSTACK_KAFKA_BOOTSTRAP"]
    # Everything processed and committed first: the replay then meets only state, not a backlog.
    worker.wait_consumed(timeout=300)
    log("kill -9 and restart")
    worker.kill()
    from streams.config.settings import Settings

    if Settings.from_env(worker.env).stages.store.startswith("rocksdb"):
        for gap in stores.gaps(Path(worker.env["K8SEV_DATA_DIR"]), bootstrap, worker.app_id):
            report.add(
                section,
                f"changelog to recover, {gap.table} (records behind / on it; stores without an offset)",
                f"{gap.behind} / {gap.end}; {gap.without_offset} of {gap.partitions}",
            )
    worker.start()
    worker.wait_ready(timeout=600)
    ready = time.monotonic() - worker.started_at
    report.add(section, "ready again after start (s)", round(ready, 1))
    report.add(section, f"goal: ready within {READY_GOAL_S:g} s", "met" if ready <= READY_GOAL_S else "NOT met")
    report.add(section, "RSS when ready (MiB)", mib(worker.memory()[0]))
    records = asyncio.run(topics.last_records(bootstrap, topic, replay))
    dropped_before = runner.metric(worker.metrics(), "k8sev_dedup_dropped_total")
    delivered_before = runner.metric(worker.metrics(), "k8sev_dedup_delivered_total")
    log(f"replaying {len(records)} raw records")
    asyncio.run(topics.produce(bootstrap, topic, iter(records), len(records)))
    replayed_at = time.monotonic()
    worker.wait_consumed(timeout=300)
    report.add(section, "replay consumed after (s)", round(time.monotonic() - replayed_at, 1))
    metrics = worker.metrics()
    dropped = runner.metric(metrics, "k8sev_dedup_dropped_total") - dropped_before
    delivered = runner.metric(metrics, "k8sev_dedup_delivered_total") - delivered_before
    es.indices.refresh(index=f"{prefix}-*", allow_no_indices=True, ignore_unavailable=True)
    documents = search.es_count(es, prefix)
    report.add(section, "replayed records", len(records))
    report.add(section, "k8sev_dedup_dropped_total grew by", int(dropped))
    report.add(section, "k8sev_dedup_delivered_total grew by (expect 0)", int(delivered))
    report.add(section, "documents after the replay (expect N)", documents)
    report.add(section, "peak RSS after restart (VmHWM, MiB)", mib(worker.memory()[1]))
    ok = int(dropped) >= len(records) and int(delivered) == 0 and documents == total
    report.add(section, "goal: replay dropped as duplicates, no new documents", "met" if ok else "NOT met")


def live(args: argparse.Namespace, stack: dict[str, str], report: Report, tmp: Path) -> None:
    name = runner.unique_name("bm")
    namespace = name
    overrides = dict(item.split("=", 1) for item in args.env)
    env = bench_stack.worker_env(stack, name, tmp, K8SEV_NAMESPACES=namespace, **overrides)
    section = f"live: {args.live} events in the API server"
    worker: runner.Worker | None = None
    try:
        kube_writer.create_namespace(stack["KUBECONFIG"], namespace)
        log(f"live: creating {args.live} events in {namespace}")
        made = kube_writer.create_events_fast(stack["KUBECONFIG"], namespace, args.live)
        report.add(section, "events created", len(made.created))
        report.add(section, "create rate (events/s)", round(made.rate))
        worker = bench_stack.start_worker(env)
        samples = follow(
            report,
            section,
            worker,
            search.es_client(stack),
            name,
            len(made.created),
            timeout=max(600.0, args.live / 100),
        )
        _save_samples(name, samples)
    finally:
        if worker:
            worker.stop()
        if not args.keep:
            scratch.drop_app(stack, name, namespace=namespace)


def _save_samples(name: str, samples: list[tuple[float, int, int]]) -> None:
    bench_stack.OUT.mkdir(parents=True, exist_ok=True)
    lines = ["seconds,rss_mib,searchable"] + [f"{t:.1f},{mib(r)},{c}" for t, r, c in samples]
    (bench_stack.OUT / f"{name}-rss.csv").write_text("\n".join(lines) + "\n")


def run(args: argparse.Namespace) -> Report:
    stack = bench_stack.stack_env()
    report = Report("memory", sys.argv[1:])
    report.add_machine(stack)
    report.add("machine", "worker code", bench_stack.code_label())
    tmp = Path(tempfile.mkdtemp(prefix="bench-memory-"))
    try:
        if args.events:
            stream(args, stack, report, tmp)
        if args.live:
            live(args, stack, report, tmp)
    finally:
        if args.keep:
            log(f"kept the workers' data under {tmp}")
        else:
            shutil.rmtree(tmp, ignore_errors=True)
    return report


if __name__ == "__main__":
    reporting.main(parse, run)
