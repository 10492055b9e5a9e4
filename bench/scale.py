"""Scale out: three workers of one deployment on the same topics, N events produced once they run.

1. A raw topic of ``--partitions`` (>= 6) partitions; ``--workers`` workers (streams role: ingest
   off) with the same app id, topics and index prefix (``devstack.worker.peer_env``), all ready
   and the group settled before any event is produced, so the partitions are shared out first.
2. N synthetic events (unique uid and resourceVersion) are produced; the clock runs from the first
   to the last document searchable.
3. Checks: every version indexed exactly once (documents searchable == N, and the workers'
   ``k8sev_events_indexed_total`` add up to N: a version indexed twice would count twice), counts
   equal (each worker's ``/counts/reasons/?window=1h&raw=1``, which gathers every partition, equals
   the occurrences the generator wrote, key by key). Reported per worker: its share of the events
   (``k8sev_dedup_delivered_total``) and its CPU per event over the same stretch.
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import json
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
from devstack import scratch, wait
from devstack import worker as runner
from streams.core.events import encode_raw

SEED = 31
IDLE_SECONDS = 5.0


def parse(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m bench.scale", description=__doc__.split("\n\n")[0])
    parser.add_argument("--events", type=int, default=100_000)
    parser.add_argument("--workers", type=int, default=3)
    parser.add_argument("--partitions", type=int, default=6)
    parser.add_argument("--quick", action="store_true", help="30,000 events")
    parser.add_argument("--env", action="append", default=[], metavar="K8SEV_X=value", help="worker setting override")
    parser.add_argument("--keep", action="store_true")
    args = parser.parse_args(argv)
    if args.quick:
        args.events = min(args.events, 30_000)
    if args.partitions < args.workers:
        parser.error("--partitions must be at least --workers")
    return args


def expected_counts(total: int) -> collections.Counter[str]:
    """Occurrences per ``<namespace>/<type>/<reason>`` the generator writes (one per version here)."""
    from streams.counts.windows import reason_key

    expected: collections.Counter[str] = collections.Counter()
    for event in synthetic.synthetic_events(total, seed=SEED):
        expected[reason_key(event["metadata"]["namespace"], event["type"], event["reason"])] += int(event["count"])
    return expected


def gathered_counts(worker: runner.Worker) -> collections.Counter[str] | None:
    """The 1h counts of the current and the previous hour as one worker answers for all partitions."""
    found: collections.Counter[str] = collections.Counter()
    for ago in (0, 1):
        status, body = worker.get(f"/counts/reasons/?window=1h&ago={ago}&raw=1", timeout=30)
        if status != 200:
            return None
        answer = json.loads(body)
        if "counts" not in answer or answer.get("failed"):
            return None
        found.update({k: int(v) for k, v in answer["counts"].items()})
    return found


def run(args: argparse.Namespace) -> Report:
    stack = bench_stack.stack_env(("kafka", "elasticsearch"))
    report = Report("scale", sys.argv[1:])
    name = runner.unique_name("bx")
    total = args.events
    timeout = max(300.0, total / 100)
    tmp = Path(tempfile.mkdtemp(prefix="bench-scale-"))
    overrides = dict(item.split("=", 1) for item in args.env)
    base = bench_stack.worker_env(
        stack, name, tmp, K8SEV_INGEST="false", K8SEV_TOPIC_PARTITIONS=str(args.partitions), **overrides
    )
    from streams.config.settings import Settings

    settings = Settings.from_env(base)
    report.add_machine(stack)
    report.add("machine", "worker code", bench_stack.code_label())
    report.add_settings(base)
    report.add("settings", "events", total)
    report.add("settings", "workers", args.workers)
    workers: list[runner.Worker] = []
    bootstrap = stack["DEVSTACK_KAFKA_BOOTSTRAP"]
    try:
        asyncio.run(topics.create_topic(bootstrap, settings.kafka.raw_topic, args.partitions))
        for i in range(args.workers):
            env = runner.peer_env(base, f"w{i}")
            workers.append(bench_stack.start_worker(env, label=f"-w{i}"))
        for worker in workers:
            worker.wait_ready()
        log(f"{args.workers} workers ready; waiting for every one to hold partitions")
        settle_group(bootstrap, name, args.workers, timeout=180)
        es = search.es_client(stack)
        # What an idle worker burns (heartbeats, probes, timers): a measurement window, not a wait.
        idle_from = [procstats.proc_cpu_seconds(w.pid) for w in workers]
        idle_started = time.monotonic()
        time.sleep(IDLE_SECONDS)
        idle_rate = [
            (procstats.proc_cpu_seconds(w.pid) - c) / (time.monotonic() - idle_started)
            for w, c in zip(workers, idle_from, strict=True)
        ]
        cpu_before = [procstats.proc_cpu_seconds(w.pid) for w in workers]
        cpu_from = time.monotonic()

        def pairs() -> Any:
            for event in synthetic.synthetic_events(total, seed=SEED):
                yield event["metadata"]["uid"].encode(), encode_raw(event)

        log(f"producing {total} events to {settings.kafka.raw_topic}")
        produced_at = time.monotonic()
        done = asyncio.run(topics.produce(bootstrap, settings.kafka.raw_topic, pairs(), total))
        report.add("preload", "produce rate (aiokafka, events/s)", round(total / (time.monotonic() - produced_at)))
        if done != total:
            raise RuntimeError(f"produced {done} of {total}")

        def check() -> None:
            for worker in workers:
                worker.check()

        first, last, count = search.wait_count(es, name, total, timeout, 0.25, check=check)
        cpu_after = [procstats.proc_cpu_seconds(w.pid) for w in workers]
        cpu_seconds = time.monotonic() - cpu_from
        if last is None or first is None:
            raise RuntimeError(f"{count} of {total} documents searchable after {timeout}s")
        section = f"{args.workers} workers, {args.partitions} partitions"
        rate = total / (last - first) if last > first else 0.0
        report.add(section, "all searchable after the first produce (s)", round(last - produced_at, 2))
        report.add(section, "events/s (first to last searchable)", round(rate))
        documents = search.count_once_consumed(es, workers[0])
        report.add(section, "documents once all consumed (expect N)", documents)

        expected = expected_counts(total)
        indexed_sum = delivered_sum = 0.0
        equal = []
        for i, worker in enumerate(workers):
            metrics = worker.metrics()
            delivered = runner.metric(metrics, "k8sev_dedup_delivered_total")
            indexed = runner.metric(metrics, "k8sev_events_indexed_total")
            delivered_sum += delivered
            indexed_sum += indexed
            cpu = cpu_after[i] - cpu_before[i]
            share = f"w{i}"
            report.add(share, "events deduped (share)", f"{int(delivered)} ({100 * delivered / total:.0f}%)")
            report.add(share, "documents indexed", int(indexed))
            report.add(share, "CPU per event of its share (us)", round(cpu / max(1.0, delivered) * 1e6, 1))
            net = cpu - idle_rate[i] * cpu_seconds
            report.add(share, "CPU per event net of its idle use (us)", round(net / max(1.0, delivered) * 1e6, 1))
            report.add(share, "idle CPU use (cores)", round(idle_rate[i], 3))
            report.add(share, "CPU use (cores, same stretch)", round(cpu / max(1e-9, last - first), 2))
            report.add(share, "peak RSS (VmHWM, MiB)", mib(worker.memory()[1]))
            counts = gathered_counts(worker)
            equal.append(counts == expected if counts is not None else None)
            if counts is not None and counts != expected:
                report.add(
                    share, "counts differing from expected (keys)", sum(1 for k in expected if counts[k] != expected[k])
                )
        goals = "goals (issue 11, scale out)"
        once = documents == total and int(indexed_sum) == total
        report.add(
            goals,
            "every version indexed exactly once",
            f"{'met' if once else 'NOT met'} (documents {documents}, indexed {int(indexed_sum)}, "
            f"deduped {int(delivered_sum)}, of {total})",
        )
        answered = [e for e in equal if e is not None]
        report.add(
            goals,
            "counts equal (every worker's gathered 1h counts == generated, key by key)",
            ("met" if answered and all(answered) else "NOT met") + f" ({sum(answered)} of {len(equal)} workers)",
        )
        for worker in workers:
            worker.stop()
    finally:
        for worker in workers:
            worker.stop()
        if not args.keep:
            scratch.drop_app(stack, name)
        shutil.rmtree(tmp, ignore_errors=True)
    return report


def settle_group(bootstrap: str, group: str, members: int, timeout: float) -> None:
    """Until the consumer group is Stable with all ``members`` and stays so for 3 s: the rebalance
    after the last join is over, so every worker has its partitions before the first event."""
    history: list[tuple[str, int]] = []

    async def describe() -> tuple[str, int]:
        from aiokafka.admin import AIOKafkaAdminClient

        admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
        await admin.start()
        try:
            answer = await admin.describe_consumer_groups([group])
        finally:
            await admin.close()
        for response in answer:
            for found in response.groups:
                if found[1] == group:
                    return str(found[2]), len(found[5])
        return "absent", 0

    def probe() -> tuple[str, int]:
        history.append(asyncio.run(describe()))
        return history[-1]

    def settled(_: tuple[str, int]) -> bool:
        recent = history[-6:]
        return len(recent) == 6 and all(state == ("Stable", members) for state in recent)

    wait.until(f"group {group} Stable with {members} members", probe, timeout=timeout, interval=0.5, ready=settled)


if __name__ == "__main__":
    reporting.main(parse, run)
