"""Latency: event created in the API server -> searchable in Elasticsearch, p50/p95/p99 per offered rate.

A worker runs LIST+WATCH on a fresh namespace with default settings. For each offered rate events
are created for ``--duration`` seconds from another process (concurrent raw HTTP), which hands
every confirmed event (document id ``uid:resourceVersion``, time the create call returned) to this
process at once. This process polls Elasticsearch every ``--poll`` seconds with an ``ids`` query for
the documents not yet seen (a search sees only refreshed documents, so this is "searchable").

latency = completion time of the first poll that returned the document - time the API server
confirmed the create. It over-states by at most one poll interval plus one search round trip
(reported), never under-states: the document was searchable no later than when the poll answered.
"""

from __future__ import annotations

import argparse
import contextlib
import shutil
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from bench import kube_writer, procstats, search
from bench import report as reporting
from bench import stack as bench_stack
from bench.report import Report, log, percentile
from devstack import scratch, transient, wait
from devstack import worker as runner


def parse(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m bench.latency", description=__doc__.split("\n\n")[0])
    parser.add_argument("--rates", default="50,200,1000", help="offered rates, events/s")
    parser.add_argument("--duration", type=float, default=25.0, help="seconds per rate")
    parser.add_argument("--poll", type=float, default=0.1, help="seconds between searches")
    parser.add_argument("--quick", action="store_true", help="10 s per rate")
    parser.add_argument("--concurrency", type=int, default=64)
    parser.add_argument("--env", action="append", default=[], metavar="K8SEV_X=value", help="worker setting override")
    parser.add_argument(
        "--split",
        action="store_true",
        help="two workers: an ingest-only leader (K8SEV_ROLE=ingest) and a streams-only worker (K8SEV_ROLE=streams)",
    )
    parser.add_argument("--keep", action="store_true")
    args = parser.parse_args(argv)
    if args.quick:
        args.duration = min(args.duration, 10.0)
    return args


def measure(
    stack: dict[str, str],
    es: Any,
    prefix: str,
    namespace: str,
    rate: float,
    duration: float,
    poll: float,
    concurrency: int,
    workers: list[runner.Worker],
) -> dict[str, Any]:
    gen = kube_writer.GeneratorProcess.paced(stack["KUBECONFIG"], namespace, rate, duration, concurrency)
    confirmed: dict[str, float] = {}
    unseen: set[str] = set()
    latency: dict[str, float] = {}
    search_seconds: list[float] = []

    def step() -> bool:
        """One round: take what the generator confirmed, search for what is not yet seen."""
        for made in gen.poll(wait=0.0):
            confirmed[made.doc_id] = made.confirmed
            unseen.add(made.doc_id)
        if gen.done and not unseen:
            return True
        if unseen:
            ids = sorted(unseen, key=confirmed.__getitem__)[:10_000]
            asked = time.monotonic()
            try:
                found = es.search(
                    index=f"{prefix}-*",
                    query={"ids": {"values": ids}},
                    size=len(ids),
                    source=False,
                    allow_no_indices=True,
                    ignore_unavailable=True,
                )
            except Exception as exc:
                # A daily index just created (503, no shard yet): nothing searchable this round.
                if not transient.search(exc):
                    raise
                found = {"hits": {"hits": []}}
            answered = time.time()
            search_seconds.append(time.monotonic() - asked)
            for hit in found["hits"]["hits"]:
                if hit["_id"] in unseen:
                    unseen.discard(hit["_id"])
                    latency[hit["_id"]] = answered - confirmed[hit["_id"]]
        for worker in workers:
            worker.check()
        return False

    # Not fatal: what is not searchable 120 s after the last create is reported.
    with contextlib.suppress(wait.WaitTimeout):
        wait.until("every created event searchable", step, timeout=duration + 120, interval=poll)
    result = gen.join(30)
    values = list(latency.values())
    return {
        "created (confirmed) events/s": round(result.rate, 1),
        "create errors": result.errors,
        "p50 (s)": round(percentile(values, 50), 3),
        "p95 (s)": round(percentile(values, 95), 3),
        "p99 (s)": round(percentile(values, 99), 3),
        "max (s)": round(max(values, default=0.0), 3),
        "not searchable within 120 s": len(unseen),
        "search round trip p50/max (s)": f"{percentile(search_seconds, 50):.3f}/{max(search_seconds, default=0):.3f}",
    }


def run(args: argparse.Namespace) -> Report:
    stack = bench_stack.stack_env()
    report = Report("latency", sys.argv[1:])
    name = runner.unique_name("bl")
    namespace = name
    tmp = Path(tempfile.mkdtemp(prefix="bench-latency-"))
    overrides = dict(item.split("=", 1) for item in args.env)
    env = bench_stack.worker_env(stack, name, tmp, K8SEV_NAMESPACES=namespace, **overrides)
    envs = [env]
    if args.split:
        envs = [{**env, "K8SEV_ROLE": "ingest"}, runner.peer_env(env, "streams-0", K8SEV_ROLE="streams")]
    report.add_machine(stack)
    report.add_settings(env)
    report.add("settings", "poll interval (s)", args.poll)
    report.add("settings", "workers", "ingest-only leader + streams-only worker" if args.split else "one, all roles")
    workers: list[runner.Worker] = []
    try:
        kube_writer.create_namespace(stack["KUBECONFIG"], namespace)
        for index, worker_env in enumerate(envs):
            workers.append(bench_stack.start_worker(worker_env, f"-{index}" if args.split else ""))
        for worker in workers:
            worker.wait_ready()
        leader = workers[0]
        # Ready means the search engine and Kafka answer; the clock starts once the watch streams too.
        wait.until("the watch up", lambda: runner.metric(leader.metrics(), "k8sev_watch_up"), timeout=60,
                   ready=lambda up: up == 1)  # fmt: skip
        es = search.es_client(stack)
        for rate_text in args.rates.split(","):
            rate = float(rate_text)
            log(f"latency at {rate:g} events/s offered for {args.duration:g} s")
            cpu_before = [procstats.proc_cpu_seconds(worker.pid) for worker in workers]
            figures = measure(stack, es, name, namespace, rate, args.duration, args.poll, args.concurrency, workers)
            for label, value in figures.items():
                report.add(f"{rate:g} events/s offered", label, value)
            # The next rate starts on an idle pipeline: all of this one consumed, not a pause.
            leader.wait_consumed()
            for worker, before in zip(workers, cpu_before, strict=True):
                role = worker.env.get("K8SEV_ROLE", "all")
                used = procstats.proc_cpu_seconds(worker.pid) - before
                report.add(f"{rate:g} events/s offered", f"worker CPU, role {role} (s)", round(used, 1))
        from streams.config.settings import Settings
        from streams.config.values import parse_duration

        settings = Settings.from_env(env)
        goal = parse_duration(settings.search.index_refresh_interval) + 1.0
        p99 = report.sections.get("200 events/s offered", {}).get("p99 (s)")
        if p99 is not None:
            report.add(
                "goal",
                f"p99 at 200/s <= refresh interval + 1 s = {goal:g} s",
                f"{p99} ({'met' if p99 <= goal else 'NOT met'})",
            )
        for worker in workers:
            role = worker.env.get("K8SEV_ROLE", "all")
            report.add("memory", f"worker RSS at the end, role {role} (MiB)", procstats.mib(worker.memory()[0]))
    finally:
        for worker in workers:
            worker.stop()
        if not args.keep:
            scratch.drop_app(stack, name, namespace=namespace)
        shutil.rmtree(tmp, ignore_errors=True)
    return report


if __name__ == "__main__":
    reporting.main(parse, run)
