"""Enrichment's cost: the same churn workload ingested with ``K8SEV_ENRICH`` off and on, alternating.

1. Each run has its own namespace, raw topic and an ingest-only worker (``K8SEV_ROLE=ingest``, so
   its CPU is the ingest's), started with enrichment off or on; runs alternate off, on, off, on...
2. Once the worker is ready, the API server's ``apiserver_request_total`` (its /metrics) and the
   worker's CPU time are read, then the churn runs: a Deployment scaled between 1 and ``--replicas``
   ``--cycles`` times while a CronJob (every minute) runs ``--jobs`` Jobs; then both are deleted
   (background propagation) and the run waits until the raw topic has had nothing new for 5 s.
3. The counters are read again. ``apiserver_request_total`` counts every client (controllers,
   scheduler, kwok), so the worker runs as a ServiceAccount of its own that API Priority and Fairness
   flow schemas single out, one per kind of request (leases, events, other GET, LIST, WATCH, the
   rest): ``apiserver_flowcontrol_dispatched_requests_total{flow_schema}`` is the worker's own
   requests. The same workload with enrichment off is the baseline; on minus off is enrichment's
   cost. Start-up (before the first reading) is reported apart: enrichment's paged LIST and WATCH
   per resource happen there, once a leadership term.
4. The raw records are read back: the share that carries ``involvedObjectMeta``, by kind.

The cache's memory per object is ``python -m bench.enrich_cache`` (in-process, no stack): run here
too unless ``--no-cache``.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import shutil
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any

from bench import enrich_cache, procstats, topics
from bench import report as reporting
from bench import stack as bench_stack
from bench.report import Report, log
from devstack import offsets, scratch, transient, wait
from devstack import worker as runner

META = "involvedObjectMeta"
Requests = Counter[tuple[str, str]]


def parse(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m bench.enrich", description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=3, help="pairs of runs (off, on)")
    parser.add_argument("--cycles", type=int, default=4, help="scale-up-and-down cycles of the Deployment per run")
    parser.add_argument("--replicas", type=int, default=30, help="the Deployment's replicas when scaled up")
    parser.add_argument("--jobs", type=int, default=2, help="the CronJob's Jobs completed per run")
    parser.add_argument("--quick", action="store_true", help="1 round, 2 cycles to 20 replicas, 1 Job")
    parser.add_argument("--idle", type=float, default=20.0, help="seconds of the idle worker's CPU, measured first")
    parser.add_argument("--no-cache", action="store_true", help="skip the cache memory figures")
    parser.add_argument("--env", action="append", default=[], metavar="K8SEV_X=value", help="worker setting override")
    parser.add_argument("--keep", action="store_true", help="leave namespaces and topics")
    args = parser.parse_args(argv)
    if args.quick:
        args.rounds, args.cycles, args.replicas, args.jobs = 1, min(args.cycles, 2), min(args.replicas, 20), 1
        args.idle = min(args.idle, 10.0)
    return args


# ---------------------------------------------------------------- the API server's counters


def kube(kubeconfig: str) -> Any:
    from kubernetes import config

    return config.new_client_from_config(config_file=kubeconfig)


def parse_requests(text: str) -> Requests:
    """``apiserver_request_total`` summed by (verb, resource[/subresource]); other series ignored."""
    counts: Requests = Counter()
    for line in text.splitlines():
        if not line.startswith("apiserver_request_total{"):
            continue
        labels_text, _, value = line[len("apiserver_request_total{") :].rpartition("} ")
        labels = dict(part.split("=", 1) for part in labels_text.split('",') if "=" in part)
        labels = {k: v.strip('"') for k, v in labels.items()}
        resource = labels.get("resource", "")
        if labels.get("subresource") and resource:
            resource += "/" + labels["subresource"]
        counts[(labels.get("verb", ""), resource or labels.get("subresource", ""))] += int(float(value))
    return counts


def parse_dispatched(text: str, prefix: str) -> Counter[str]:
    """``apiserver_flowcontrol_dispatched_requests_total`` of the flow schemas named ``prefix-*``, by
    the rest of the name."""
    counts: Counter[str] = Counter()
    start = f'apiserver_flowcontrol_dispatched_requests_total{{flow_schema="{prefix}-'
    for line in text.splitlines():
        if line.startswith(start):
            schema, _, rest = line[len(start) :].partition('"')
            counts[schema] += int(float(rest.rpartition(" ")[2]))
    return counts


def api_metrics(api: Any) -> str:
    """The API server's own /metrics, read with the kubeconfig's credentials."""
    conf = api.configuration
    headers = {s["key"]: s["value"] for s in conf.auth_settings().values() if s["in"] == "header"}
    answer = api.rest_client.pool_manager.request("GET", conf.host + "/metrics", headers=headers, timeout=30)
    if answer.status != 200:
        raise RuntimeError(f"API server /metrics: HTTP {answer.status}")
    return str(answer.data.decode())


#: The worker's requests by kind, in matching order (the first schema that matches counts it).
SCHEMAS: tuple[tuple[str, dict[str, Any]], ...] = (
    ("leases", {"verbs": ["*"], "apiGroups": ["coordination.k8s.io"], "resources": ["leases"]}),
    ("events", {"verbs": ["*"], "apiGroups": [""], "resources": ["events"]}),
    ("get", {"verbs": ["get"], "apiGroups": ["*"], "resources": ["*"]}),
    ("list", {"verbs": ["list"], "apiGroups": ["*"], "resources": ["*"]}),
    ("watch", {"verbs": ["watch"], "apiGroups": ["*"], "resources": ["*"]}),
    ("other", {"verbs": ["*"], "apiGroups": ["*"], "resources": ["*"]}),
)


#: What could grow with the events (the lease renewals are per second, the same on or off).
PER_EVENT = tuple(kind for kind, _ in SCHEMAS if kind != "leases")


class OwnIdentity:
    """A ServiceAccount for the worker (cluster-admin: a benchmark, not a deployment), its kubeconfig,
    and the flow schemas that count its requests; removed by :meth:`close`."""

    def __init__(self, api: Any, kubeconfig: str, name: str, directory: Path) -> None:
        from kubernetes import client

        from tests.deploy.rbac import admin_cluster, service_account_token, write_token_kubeconfig

        self.name = name
        self._rbac, self._flow = client.RbacAuthorizationV1Api(api), client.FlowcontrolApiserverV1Api(api)
        core = client.CoreV1Api(api)
        core.create_namespaced_service_account(name, {"metadata": {"name": "worker"}})
        subject = {"kind": "ServiceAccount", "name": "worker", "namespace": name}
        role = {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": "cluster-admin"}
        self._rbac.create_cluster_role_binding({"metadata": {"name": name}, "roleRef": role, "subjects": [subject]})
        for precedence, (kind, rule) in enumerate(SCHEMAS, start=50):
            matches: dict[str, Any] = {
                "subjects": [{"kind": "ServiceAccount", "serviceAccount": {"name": "worker", "namespace": name}}],
                "resourceRules": [{**rule, "clusterScope": True, "namespaces": ["*"]}],
            }
            if kind == "other":
                matches["nonResourceRules"] = [{"verbs": ["*"], "nonResourceURLs": ["*"]}]
            spec = {
                "matchingPrecedence": precedence,
                "priorityLevelConfiguration": {"name": "workload-high"},
                "distinguisherMethod": {"type": "ByUser"},
                "rules": [matches],
            }
            self._flow.create_flow_schema({"metadata": {"name": f"{name}-{kind}"}, "spec": spec})
        server, ca = admin_cluster(kubeconfig)
        token = service_account_token(core, "worker", name)
        self.kubeconfig = write_token_kubeconfig(directory / "worker.kubeconfig", server, ca, token, name)

    def close(self) -> None:
        from kubernetes.client.exceptions import ApiException

        for delete, what in [(self._flow.delete_flow_schema, f"{self.name}-{k}") for k, _ in SCHEMAS] + [
            (self._rbac.delete_cluster_role_binding, self.name)
        ]:
            try:
                delete(what)
            except ApiException as exc:
                if exc.status != 404:
                    raise


def delta(after: Counter[Any], before: Counter[Any]) -> Counter[Any]:
    return Counter({key: after[key] - before[key] for key in after if after[key] - before[key] > 0})


# ---------------------------------------------------------------- the workload


def deployment(name: str, replicas: int) -> dict[str, Any]:
    labels = {"app": name, "app.kubernetes.io/name": name}
    return {
        "metadata": {"name": name},
        "spec": {
            "replicas": replicas,
            "selector": {"matchLabels": {"app": name}},
            "template": {
                "metadata": {"labels": labels},
                "spec": {"containers": [{"name": "c", "image": "nginx"}], "nodeSelector": {"type": "kwok"}},
            },
        },
    }


def cronjob(name: str) -> dict[str, Any]:
    pod = {
        "containers": [{"name": "c", "image": "busybox"}],
        "nodeSelector": {"type": "kwok"},
        "restartPolicy": "Never",
    }
    job = {"backoffLimit": 0, "template": {"metadata": {"labels": {"app": name}}, "spec": pod}}
    return {
        "metadata": {"name": name},
        "spec": {"schedule": "* * * * *", "concurrencyPolicy": "Forbid", "jobTemplate": {"spec": job}},
    }


def until(what: str, probe: Callable[[], bool], timeout: float) -> None:
    wait.until(what, probe, timeout=timeout, interval=0.5, ready=bool, not_yet=transient.http)


def churn(api: Any, namespace: str, cycles: int, replicas: int, jobs: int) -> dict[str, int]:
    from kubernetes import client

    apps, batch, core = client.AppsV1Api(api), client.BatchV1Api(api), client.CoreV1Api(api)

    def scaled(count: int) -> Callable[[], bool]:
        def done() -> bool:
            status = apps.read_namespaced_deployment("web", namespace).status
            return (status.ready_replicas or 0) == count and (status.replicas or 0) == count

        return done

    batch.create_namespaced_cron_job(namespace, cronjob("nightly"))
    apps.create_namespaced_deployment(namespace, deployment("web", 1))
    until("web at 1", scaled(1), 120)
    for cycle in range(cycles):
        for count in (replicas, 1):
            apps.patch_namespaced_deployment_scale("web", namespace, {"spec": {"replicas": count}})
            until(f"cycle {cycle + 1}: web at {count}", scaled(count), 180)

    def completed() -> int:
        return sum(1 for j in batch.list_namespaced_job(namespace).items if (j.status.succeeded or 0) >= 1)

    # The schedule is a minute: up to a minute per Job beyond the scaling.
    until(f"{jobs} Jobs completed", lambda: completed() >= jobs, 70.0 * jobs + 60)
    made = {"jobs completed": completed()}
    apps.delete_namespaced_deployment("web", namespace, propagation_policy="Background")
    batch.delete_namespaced_cron_job("nightly", namespace, propagation_policy="Background")
    until("every pod and Job gone", lambda: not core.list_namespaced_pod(namespace).items
          and not batch.list_namespaced_job(namespace).items, 180)  # fmt: skip
    return made


async def settled(bootstrap: str, topic: str, quiet: float = 5.0, within: float = 120.0) -> int:
    """Records on ``topic`` once nothing new came for ``quiet`` s (the last events of the deletions)."""
    watcher = topics.OffsetWatcher(bootstrap, topic)
    await watcher.start()
    try:
        last = {"count": -1, "since": time.monotonic()}

        async def quiet_for() -> float:
            count = await watcher.total()
            if count != last["count"]:
                last["count"], last["since"] = count, time.monotonic()
            return time.monotonic() - last["since"]

        await wait.until_async(f"{topic} quiet for {quiet:g} s", quiet_for, timeout=within, interval=0.5,
                               ready=lambda s: s >= quiet, not_yet=transient.kafka)  # fmt: skip
        return int(last["count"])
    finally:
        await watcher.stop()


async def read_raw(bootstrap: str, topic: str, total: int) -> list[dict[str, Any]]:
    """Every record of the run's raw topic, decoded."""
    from aiokafka import AIOKafkaConsumer

    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False, auto_offset_reset="earliest")
    await consumer.start()
    try:
        consumer.assign(await offsets.partitions(consumer, topic))
        values: list[dict[str, Any]] = []
        deadline = time.monotonic() + 60
        while len(values) < total and time.monotonic() < deadline:
            batches = await consumer.getmany(timeout_ms=500, max_records=5000)
            values.extend(json.loads(r.value) for rs in batches.values() for r in rs if r.value)
        return values
    finally:
        await consumer.stop()


# ---------------------------------------------------------------- one run


def one_run(stack: dict[str, str], args: argparse.Namespace, enrich: bool, index: int) -> dict[str, Any]:
    mode = "on" if enrich else "off"
    name = runner.unique_name(f"be{mode}")
    tmp = Path(tempfile.mkdtemp(prefix="bench-enrich-"))
    api = kube(stack["KUBECONFIG"])
    worker: runner.Worker | None = None
    identity: OwnIdentity | None = None
    try:
        from kubernetes import client

        from streams.config.settings import Settings

        client.CoreV1Api(api).create_namespace({"metadata": {"name": name, "labels": {"purpose": "bench"}}})
        identity = OwnIdentity(api, stack["KUBECONFIG"], name, tmp)
        own = str(identity.kubeconfig)
        env = bench_stack.worker_env(
            stack, name, tmp, K8SEV_NAMESPACES=name, K8SEV_ROLE="ingest", K8SEV_ENRICH=str(enrich).lower(),
            KUBECONFIG=own, K8SEV_KUBECONFIG=own, **dict(item.split("=", 1) for item in args.env),
        )  # fmt: skip
        partitions = Settings.from_env(env).kafka.topic_partitions
        asyncio.run(topics.create_topic(stack["DEVSTACK_KAFKA_BOOTSTRAP"], env["K8SEV_TOPIC"], partitions))
        before_start = api_metrics(api)
        log(f"run {index} (enrichment {mode}): worker {name}")
        worker = bench_stack.start_worker(env, f"-{mode}")
        worker.wait_ready()
        if enrich:
            until("enrichment's watches up", lambda: readyz_enrich(worker).startswith("watching 8 of 8"), 60)
        idle = idle_cpu(worker.pid, args.idle)
        # The CronJob's first Job comes at the next full minute: starting each run at the same second
        # of the minute gives the runs the same length, so the time-based costs (lease renewals, the
        # idle worker's own CPU) weigh the same in each.
        wait.until("second 25-35 of the minute", lambda: 25 <= time.time() % 60 < 35, timeout=65, interval=0.2)
        started = api_metrics(api)
        cpu0 = procstats.proc_cpu_seconds(worker.pid)
        clock = time.monotonic()
        made = churn(api, name, args.cycles, args.replicas, args.jobs)
        total = asyncio.run(settled(stack["DEVSTACK_KAFKA_BOOTSTRAP"], env["K8SEV_TOPIC"]))
        cpu = procstats.proc_cpu_seconds(worker.pid) - cpu0
        ended = api_metrics(api)
        seconds = time.monotonic() - clock
        records = asyncio.run(read_raw(stack["DEVSTACK_KAFKA_BOOTSTRAP"], env["K8SEV_TOPIC"], total))
        by_kind: Counter[str] = Counter()
        enriched: Counter[str] = Counter()
        for value in records:
            kind = str((value.get("involvedObject") or {}).get("kind") or "?")
            by_kind[kind] += 1
            enriched[kind] += META in value
        return {
            "mode": mode,
            "records": total,
            "read back": len(records),
            "seconds": seconds,
            "cpu": cpu,
            "idle cpu per s": idle,
            "own startup": delta(parse_dispatched(started, name), parse_dispatched(before_start, name)),
            "own churn": delta(parse_dispatched(ended, name), parse_dispatched(started, name)),
            "all churn": delta(parse_requests(ended), parse_requests(started)),
            "by kind": by_kind,
            "enriched": enriched,
            **made,
        }
    finally:
        if worker:
            worker.stop()
        if identity:
            identity.close()
        if not args.keep:
            scratch.drop_app(stack, name, namespace=name)
        shutil.rmtree(tmp, ignore_errors=True)


def idle_cpu(pid: int, seconds: float) -> float:
    """The ready worker's CPU seconds per second with nothing to ingest (its timers, the lease)."""
    cpu0, clock = procstats.proc_cpu_seconds(pid), time.monotonic()
    wait.until(f"{seconds:g} s of an idle worker", lambda: time.monotonic() - clock >= seconds,
               timeout=seconds + 5, interval=0.5)  # fmt: skip
    return (procstats.proc_cpu_seconds(pid) - cpu0) / (time.monotonic() - clock)


def readyz_enrich(worker: runner.Worker) -> str:
    _, body = worker.get("/readyz", timeout=5)
    checks = json.loads(body).get("checks", {}) if body else {}
    return str((checks.get("enrich") or {}).get("detail", ""))


# ---------------------------------------------------------------- the report


def top(requests: Requests, per: float, limit: int = 6) -> str:
    return ", ".join(f"{verb} {res} {count * per:.0f}" for (verb, res), count in requests.most_common(limit)) or "-"


def per_thousand(runs: list[dict[str, Any]], kinds: tuple[str, ...] = PER_EVENT) -> float:
    """The worker's own requests of ``kinds`` during the churn per 1,000 events."""
    events = sum(r["records"] for r in runs)
    count = sum(c for r in runs for kind, c in r["own churn"].items() if kind in kinds)
    return count * 1000 / events if events else 0.0


def run(args: argparse.Namespace) -> Report:
    stack = bench_stack.stack_env(("kafka", "kube-apiserver", "kube-controller-manager", "kube-scheduler", "kwok"))
    report = Report("enrich", sys.argv[1:])
    report.add_machine(stack)
    report.add("settings", "worker code", bench_stack.code_label())
    workload = f"{args.cycles} x (1 -> {args.replicas} -> 1 pods), {args.jobs} Job(s) of a CronJob"
    report.add("settings", "workload", workload)
    runs: list[dict[str, Any]] = []
    for _ in range(args.rounds):
        for enrich in (False, True):
            runs.append(one_run(stack, args, enrich, len(runs) + 1))
    by_mode = {mode: [r for r in runs if r["mode"] == mode] for mode in ("off", "on")}
    for mode, mine in by_mode.items():
        events = sum(r["records"] for r in mine)
        per = 1000 / events if events else 0.0
        own: Counter[str] = sum((r["own churn"] for r in mine), Counter())
        startup: Counter[str] = sum((r["own startup"] for r in mine), Counter())
        every: Requests = sum((r["all churn"] for r in mine), Counter())
        seconds = sum(r["seconds"] for r in mine)
        section = f"enrichment {mode} ({len(mine)} runs)"
        report.add(
            section, "events ingested (raw records; read back)", f"{events}; {sum(r['read back'] for r in mine)}"
        )
        report.add(section, "churn seconds", round(seconds, 1))
        report.add(section, "worker's requests per 1,000 events, leases apart", round(per_thousand(mine), 1))
        report.add(section, "  by kind", ", ".join(f"{k} {own[k] * per:.1f}" for k in PER_EVENT))
        report.add(section, "  lease requests per minute", round(own["leases"] / seconds * 60, 1) if seconds else "-")
        report.add(section, "worker's start-up requests per run", ", ".join(
            f"{k} {startup[k] / len(mine):.0f}" for k, _ in SCHEMAS))  # fmt: skip
        report.add(section, "all clients' requests per 1,000 events", round(sum(every.values()) * per))
        report.add(section, "  most", top(every, per))
        cpu = sum(r["cpu"] for r in mine)
        report.add(section, "ingest CPU per event (us)", round(cpu / events * 1e6) if events else "-")
        report.add(
            section, "ingest CPU (% of a core over the churn)", round(cpu / seconds * 100, 1) if seconds else "-"
        )
        idle = sum(r["idle cpu per s"] for r in mine) / len(mine)
        report.add(section, "idle worker's CPU (% of a core)", round(100 * idle, 2))
        busy = cpu - sum(r["idle cpu per s"] * r["seconds"] for r in mine)
        report.add(section, "ingest CPU per event above idle (us)", round(busy / events * 1e6) if events else "-")
        kinds: Counter[str] = sum((r["by kind"] for r in mine), Counter())
        enriched: Counter[str] = sum((r["enriched"] for r in mine), Counter())
        share = sum(enriched.values()) / events if events else 0.0
        report.add(section, "events enriched", f"{sum(enriched.values())} ({share:.1%})")
        report.add(section, "  by kind (enriched / events)", ", ".join(
            f"{k} {enriched[k]}/{n}" for k, n in kinds.most_common()))  # fmt: skip
    off, on = by_mode["off"], by_mode["on"]
    report.add(
        "on - off", "worker's requests per 1,000 events, leases apart", round(per_thousand(on) - per_thousand(off), 1)
    )
    report.add("on - off", "  GET and LIST per 1,000 events (events and leases apart)",
               round(per_thousand(on, ("get", "list")) - per_thousand(off, ("get", "list")), 1))  # fmt: skip
    cpu_off = sum(r["cpu"] for r in off) / max(1, sum(r["records"] for r in off))
    cpu_on = sum(r["cpu"] for r in on) / max(1, sum(r["records"] for r in on))
    report.add("on - off", "ingest CPU per event, on / off", round(cpu_on / cpu_off, 2) if cpu_off else "-")

    def busy_per_event(rs: list[dict[str, Any]]) -> float:
        busy = sum(r["cpu"] - r["idle cpu per s"] * r["seconds"] for r in rs)
        return float(busy / max(1, sum(r["records"] for r in rs)))

    if busy_per_event(off) > 0:
        report.add(
            "on - off", "ingest CPU per event above idle, on / off", round(busy_per_event(on) / busy_per_event(off), 2)
        )
    if not args.no_cache:
        for n in (10_000, 100_000):
            bytes_per = enrich_cache.measure(n)
            report.add("cache memory (bench.enrich_cache)", f"{n} objects",
                       f"{bytes_per:.0f} B each, {bytes_per * n / 2**20:.1f} MiB")  # fmt: skip
    return report


if __name__ == "__main__":
    reporting.main(parse, run)
