"""What the consumer-lag metric costs: worker CPU per lag round, and so per event at a given rate.

A round costs the same whatever the event rate (one ListOffsets request, a sum over the owned
partitions), so it is measured on an idle worker that owns every partition: the same worker code
(``bench.lag_app``) runs twice on the same topics, once with the default interval
(``streams.agents.lag.INTERVAL``) and once with a round every ``--fast`` seconds; over the same
window, the CPU difference divided by the difference in rounds is the CPU of one round. Per event at
rate R that is ``round / (INTERVAL * R)``.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import tempfile
import time
from pathlib import Path

from bench import procstats, synthetic, topics
from bench import stack as bench_stack
from bench.report import Report, log, main
from devstack import scratch
from devstack import worker as runner
from streams.agents import lag
from streams.core.events import encode_raw


def parse(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="bench.lag", description=__doc__)
    parser.add_argument("--events", type=int, default=5000, help="records on the raw topic first (default 5000)")
    parser.add_argument("--window", type=float, default=60.0, help="seconds measured per run (default 60)")
    parser.add_argument("--fast", type=float, default=0.05, help="the fast run's interval in seconds (0.05)")
    parser.add_argument("--quick", action="store_true", help="1,000 events and 20 s windows")
    args = parser.parse_args(argv)
    if args.quick:
        args.events, args.window = 1000, 20.0
    return args


def rounds(worker: runner.Worker) -> tuple[float, float]:
    """(rounds done, wall seconds spent in them) so far."""
    status, body = worker.get("/metrics")
    assert status == 200, status
    text = body.decode()
    return runner.metric(text, "bench_lag_rounds_total"), runner.metric(text, "bench_lag_round_seconds_total")


def measure(env: dict[str, str], interval: float, window: float, label: str) -> dict[str, float]:
    worker = bench_stack.new_worker({**env, "BENCH_LAG_INTERVAL": str(interval)}, label)
    worker.app = "bench.lag_app"
    worker.start()
    try:
        worker.wait_ready()
        worker.wait_consumed()
        # Past start-up: the first rounds and the catch-up are not what is measured.
        time.sleep(max(2 * interval, 5.0))
        cpu0, rounds0, wall0 = procstats.proc_cpu_seconds(worker.pid), rounds(worker), time.monotonic()
        time.sleep(window)
        cpu1, rounds1, wall1 = procstats.proc_cpu_seconds(worker.pid), rounds(worker), time.monotonic()
    finally:
        worker.stop()
    seconds = wall1 - wall0
    done = rounds1[0] - rounds0[0]
    return {
        "cpu_per_s": (cpu1 - cpu0) / seconds,
        "rounds_per_s": done / seconds,
        "wall_per_round_s": (rounds1[1] - rounds0[1]) / done if done else float("nan"),
    }


def run(args: argparse.Namespace) -> Report:
    stack = bench_stack.stack_env(("kafka", "elasticsearch"))
    report = Report("lag", sys.argv[1:])
    name = runner.unique_name("bl")
    tmp = Path(tempfile.mkdtemp(prefix="bench-lag-"))
    env = bench_stack.worker_env(stack, name, tmp, K8SEV_INGEST="false")
    report.add_machine(stack)
    report.add("machine", "worker code", bench_stack.code_label())
    report.add("settings", "events", args.events)
    report.add("settings", "default interval (s)", lag.INTERVAL)
    report.add("settings", "fast interval (s)", args.fast)
    try:
        bootstrap = stack["DEVSTACK_KAFKA_BOOTSTRAP"]
        values = ((str(i).encode(), encode_raw(e)) for i, e in enumerate(synthetic.synthetic_events(args.events)))
        partitions = int(env.get("K8SEV_TOPIC_PARTITIONS", "6"))
        asyncio.run(topics.create_topic(bootstrap, env["K8SEV_TOPIC"], partitions))
        asyncio.run(topics.produce(bootstrap, env["K8SEV_TOPIC"], values, args.events))
        results = {}
        for label, interval in (("default", lag.INTERVAL), ("fast", args.fast)):
            log(f"{label}: a round every {interval:g} s, {args.window:g} s measured")
            results[label] = measure(env, interval, args.window, f"-{label}")
            for key, value in results[label].items():
                report.add(label, key, round(value, 4))
        extra_rounds = results["fast"]["rounds_per_s"] - results["default"]["rounds_per_s"]
        extra_cpu = results["fast"]["cpu_per_s"] - results["default"]["cpu_per_s"]
        per_round = extra_cpu / extra_rounds
        # Below the idle worker's own variation the difference can come out negative: then the
        # figure is "not measurable here", and the variation bounds it.
        report.add("cost", "extra rounds per second", round(extra_rounds, 3))
        report.add("cost", "extra CPU per second (s)", round(extra_cpu, 5))
        report.add("cost", "CPU per round (ms)", round(per_round * 1000, 3))
        report.add("cost", "CPU share at the default interval (%)", round(100 * per_round / lag.INTERVAL, 4))
        for rate in (200, 1000):
            report.add(
                "cost", f"CPU per event at {rate} events/s (us)", round(per_round / lag.INTERVAL / rate * 1e6, 4)
            )
    finally:
        scratch.drop_app(stack, name)
    return report


if __name__ == "__main__":
    main(parse, run)
