"""What every benchmark shares: the stack, a worker subprocess, its memory, synthetic events,
fast event creation in the API server, Kafka and Elasticsearch helpers, cleanup and the report.

Names (app id, topics, index prefix, namespace) are unique per run and removed at the end.
Only 127.0.0.1 addresses are used (those ``devstack env`` prints).
"""

from __future__ import annotations

import asyncio
import contextlib
import importlib.metadata
import json
import math
import multiprocessing
import os
import platform
import queue as queue_module
import random
import signal
import socket
import ssl
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from devstack import scratch

ROOT = Path(__file__).resolve().parents[1]
OUT = ROOT / "bench" / "out"

# Bounds for every wait loop in the benchmarks, in seconds.
WORKER_READY_TIMEOUT = 180.0


# --------------------------------------------------------------------------------------------- stack


def stack_env(
    needs: Sequence[str] = ("kafka", "elasticsearch", "kube-apiserver"), wait: float = 120.0
) -> dict[str, str]:
    """``devstack env`` as a dict; waits up to ``wait`` s for the servers a benchmark needs (other
    sessions restart them in fault tests), then fails clearly."""
    from devstack import stack

    servers = [s for s in stack.select([]) if s.name in needs]
    deadline = time.monotonic() + wait
    while True:
        down = [name for name, state, _ in stack.status(servers) if not state.startswith("ready")]
        if not down or time.monotonic() > deadline:
            break
        time.sleep(2)
    if down:
        raise SystemExit(f"bench: local stack not ready ({', '.join(down)}): run `.venv/bin/python -m devstack up`")
    env = stack.env(stack.select([]))
    for key in ("DEVSTACK_KAFKA_BOOTSTRAP", "DEVSTACK_ELASTICSEARCH_URL", "KUBECONFIG"):
        if key not in env:
            raise SystemExit(f"bench: devstack env lacks {key}")
    return env


def unique_name(prefix: str) -> str:
    """A fresh lowercase name, valid as a Kafka topic, an index prefix and a namespace."""
    return f"{prefix}-{uuid.uuid4().hex[:10]}"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


# -------------------------------------------------------------------------------------------- worker


def worker_env(stack: dict[str, str], name: str, data_dir: Path, **overrides: str) -> dict[str, str]:
    """The worker's environment: defaults for everything that shapes throughput, unique names."""
    env = {
        **os.environ,
        "KUBECONFIG": stack["KUBECONFIG"],
        "K8SEV_KUBECONFIG": stack["KUBECONFIG"],
        "K8SEV_BROKER": stack["DEVSTACK_KAFKA_BOOTSTRAP"],
        "K8SEV_ES_URL": stack["DEVSTACK_ELASTICSEARCH_URL"],
        "K8SEV_APP_ID": name,
        "K8SEV_TOPIC": f"{name}-raw",
        "K8SEV_CLEAN_TOPIC": f"{name}-clean",
        "K8SEV_DEAD_LETTER_TOPIC": f"{name}-dead-letter",
        "K8SEV_INDEX_PREFIX": name,
        # One node: a replica could never be assigned.
        "K8SEV_INDEX_REPLICAS": "0",
        "K8SEV_CLUSTER": "bench",
        "K8SEV_DATA_DIR": str(data_dir / name),
        "K8SEV_WEB_PORT": str(free_port()),
        "K8SEV_WEB_HOST": "127.0.0.1",
        "K8SEV_LEASE_NAMESPACE": "default",
    }
    env.update(overrides)
    return env


# The settings a report shows (the rest are defaults that do not shape the figures).
SHOWN_SETTINGS = (
    "K8SEV_TOPIC_PARTITIONS",
    "K8SEV_BULK_SIZE",
    "K8SEV_BULK_WITHIN",
    "K8SEV_INDEX_REFRESH_INTERVAL",
    "K8SEV_INDEX_REPLICAS",
    "K8SEV_LIST_PAGE_SIZE",
    "K8SEV_INGEST_QUEUE",
    "K8SEV_INGEST",
    "K8SEV_NAMESPACES",
    "K8SEV_DEDUP_HORIZON",
)


def shown_settings(env: dict[str, str]) -> dict[str, str]:
    from streams.settings import Settings

    settings = Settings.from_env(env)
    described = settings.describe()
    out: dict[str, str] = {}
    for var in SHOWN_SETTINGS:
        key = var.removeprefix("K8SEV_").lower()
        out[var] = env.get(var, described.get(key, "?"))
    return out


@dataclass
class Worker:
    """``faust -A streams worker`` as a subprocess (one process: its RSS is the worker's)."""

    env: dict[str, str]
    log: Path
    proc: subprocess.Popen[bytes] | None = None
    started_at: float = 0.0

    @property
    def port(self) -> int:
        return int(self.env["K8SEV_WEB_PORT"])

    @property
    def pid(self) -> int:
        assert self.proc is not None
        return self.proc.pid

    def start(self) -> None:
        self.log.parent.mkdir(parents=True, exist_ok=True)
        out = self.log.open("ab")
        self.started_at = time.monotonic()
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "faust", "-A", "streams", "worker", "--loglevel", "info"],
            cwd=ROOT,
            env=self.env,
            stdout=out,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            start_new_session=True,
        )
        out.close()

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def check(self) -> None:
        if not self.alive():
            code = self.proc.returncode if self.proc else None
            raise RuntimeError(f"worker exited ({code}); log {self.log}:\n{self.tail()}")

    def get(self, path: str, timeout: float = 5.0) -> tuple[int, bytes]:
        url = f"http://127.0.0.1:{self.port}{path}"
        try:
            with urllib.request.urlopen(url, timeout=timeout) as resp:
                return int(resp.status), resp.read()
        except urllib.error.HTTPError as exc:
            return exc.code, exc.read()

    def wait_ready(self, timeout: float = WORKER_READY_TIMEOUT) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            self.check()
            try:
                status, _ = self.get("/readyz", timeout=2)
            except OSError:
                status = 0
            if status == 200:
                return
            time.sleep(0.25)
        raise RuntimeError(f"worker not ready in {timeout}s; log {self.log}:\n{self.tail()}")

    def stop(self, timeout: float = 60.0) -> None:
        if self.proc is None or self.proc.poll() is not None:
            return
        os.killpg(self.proc.pid, signal.SIGTERM)
        try:
            self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait(10)

    def memory(self) -> tuple[int, int]:
        """(VmRSS, VmHWM) in bytes: resident now and its peak so far (0, 0 when not running)."""
        if not self.alive():
            return 0, 0
        return proc_memory(self.pid)

    def tail(self, lines: int = 40) -> str:
        try:
            return "\n".join(self.log.read_text(errors="replace").splitlines()[-lines:])
        except FileNotFoundError:
            return "(no log)"

    def log_events(self, event: str) -> list[dict[str, str]]:
        """The worker's structured log lines ``event=<event> k=v ...`` as dicts."""
        found = []
        try:
            text = self.log.read_text(errors="replace")
        except FileNotFoundError:
            return []
        for line in text.splitlines():
            at = line.find(f"event={event} ")
            if at < 0 and not line.endswith(f"event={event}"):
                continue
            fields = {}
            for part in line[at:].split():
                key, _, value = part.partition("=")
                fields[key] = value.strip('"')
            found.append(fields)
        return found


def proc_memory(pid: int) -> tuple[int, int]:
    rss = hwm = 0
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                rss = int(line.split()[1]) * 1024
            elif line.startswith("VmHWM:"):
                hwm = int(line.split()[1]) * 1024
    except (FileNotFoundError, ProcessLookupError):
        return 0, 0
    return rss, hwm


def proc_cpu_seconds(pid: int) -> float:
    """User + system CPU time the process has used so far."""
    return sum(proc_times(pid))


def proc_times(pid: int) -> tuple[float, float]:
    """(user, system) CPU seconds the process has used so far."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except (FileNotFoundError, ProcessLookupError):
        return 0.0, 0.0
    ticks = os.sysconf("SC_CLK_TCK")
    return int(fields[11]) / ticks, int(fields[12]) / ticks


class RssSampler:
    """Samples a process's RSS every ``interval`` seconds in a thread; ``mark`` adds a label."""

    def __init__(self, pid: int, interval: float = 1.0, limit: int = 100_000) -> None:
        self.pid = pid
        self.interval = interval
        self.limit = limit
        self.samples: list[tuple[float, int]] = []
        self.marks: dict[str, float] = {}
        self._progress: Callable[[], int] | None = None
        self.progress_samples: list[tuple[float, int, int]] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="rss-sampler", daemon=True)
        self.started = time.monotonic()

    def follow(self, progress: Callable[[], int]) -> None:
        """Also record ``progress()`` (say, events indexed so far) with each sample."""
        self._progress = progress

    def start(self) -> RssSampler:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(10)

    def _run(self) -> None:
        while not self._stop.is_set() and len(self.samples) < self.limit:
            rss, _ = proc_memory(self.pid)
            if rss:
                now = time.monotonic() - self.started
                self.samples.append((now, rss))
            self._stop.wait(self.interval)

    def peak(self) -> int:
        return max((rss for _, rss in self.samples), default=0)


def mib(value: float) -> float:
    return round(value / (1024 * 1024), 1)


# ------------------------------------------------------------------------------------------- events

_NAMESPACES = [f"team-{c}" for c in "abcdefghijklmnop"] + ["kube-system", "monitoring", "ingress", "default"]
_NODES = [f"node-{i:02d}" for i in range(24)]
_PULLED = 'Container image "registry.example.com/{app}:1.{n}.3" already present on machine'
_UNHEALTHY = 'Readiness probe failed: Get "http://10.244.{n}.7:8080/healthz": context deadline exceeded'
_UNSCHEDULABLE = (
    "0/24 nodes are available: 24 Insufficient memory. "
    "preemption: 0/24 nodes are available: 24 No preemption victims found for incoming pod."
)
_SCALED = "Scaled up replica set {app}-7d4b9c{n} from 2 to 3"
_MOUNT = 'MountVolume.SetUp failed for volume "config" : configmap "{app}-config" not found'
_CRON = "Saw completed job: {app}-2891{n}, condition: Complete"
# (type, reason, kind, component, message template): what kubelets, controllers and the scheduler say.
_SHAPES: list[tuple[str, str, str, str, str]] = [
    ("Normal", "Scheduled", "Pod", "default-scheduler", "Successfully assigned {ns}/{obj} to {node}"),
    ("Normal", "Pulling", "Pod", "kubelet", 'Pulling image "registry.example.com/{app}:1.{n}.3"'),
    ("Normal", "Pulled", "Pod", "kubelet", _PULLED),
    ("Normal", "Created", "Pod", "kubelet", "Created container: {app}"),
    ("Normal", "Started", "Pod", "kubelet", "Started container {app}"),
    ("Normal", "Killing", "Pod", "kubelet", "Stopping container {app}"),
    ("Warning", "BackOff", "Pod", "kubelet", "Back-off restarting failed container {app} in pod {obj}_{ns}({uid})"),
    ("Warning", "Unhealthy", "Pod", "kubelet", _UNHEALTHY),
    ("Warning", "FailedScheduling", "Pod", "default-scheduler", _UNSCHEDULABLE),
    ("Normal", "SuccessfulCreate", "ReplicaSet", "replicaset-controller", "Created pod: {obj}"),
    ("Normal", "ScalingReplicaSet", "Deployment", "deployment-controller", _SCALED),
    ("Normal", "SuccessfulDelete", "ReplicaSet", "replicaset-controller", "Deleted pod: {obj}"),
    ("Warning", "FailedMount", "Pod", "kubelet", _MOUNT),
    ("Normal", "Completed", "Job", "job-controller", "Job completed"),
    ("Normal", "SawCompletedJob", "CronJob", "cronjob-controller", _CRON),
]
_APPS = ["web", "api", "worker", "cache", "search", "billing", "auth", "gateway", "ingest", "report"]


def rfc3339(when: datetime) -> str:
    return when.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def synthetic_event(
    rng: random.Random, uid: str, resource_version: int, when: datetime, count: int = 1
) -> dict[str, Any]:
    """A core/v1 Event as the watch delivers it (managedFields already dropped), about 0.8-1 kB."""
    ns = rng.choice(_NAMESPACES)
    type_, reason, kind, component, template = rng.choice(_SHAPES)
    app = rng.choice(_APPS)
    n = rng.randrange(10)
    node = rng.choice(_NODES)
    suffix = "".join(rng.choices("bcdfghjklmnpqrstvwxz2456789", k=5))
    obj = f"{app}-7d4b9c{n}-{suffix}" if kind == "Pod" else f"{app}-7d4b9c{n}" if kind == "ReplicaSet" else app
    obj_uid = str(uuid.UUID(int=rng.getrandbits(128), version=4))
    stamp = rfc3339(when)
    first = rfc3339(when - timedelta(seconds=rng.randrange(0, 600) if count > 1 else 0))
    event: dict[str, Any] = {
        "kind": "Event",
        "apiVersion": "v1",
        "metadata": {
            "name": f"{obj}.{rng.getrandbits(64):016x}",
            "namespace": ns,
            "uid": uid,
            "resourceVersion": str(resource_version),
            "creationTimestamp": first,
        },
        "involvedObject": {
            "kind": kind,
            "namespace": ns,
            "name": obj,
            "uid": obj_uid,
            "apiVersion": "v1" if kind == "Pod" else "apps/v1" if kind != "Job" else "batch/v1",
            "resourceVersion": str(rng.randrange(10_000, 9_000_000)),
        },
        "reason": reason,
        "message": template.format(ns=ns, obj=obj, node=node, app=app, n=n, uid=obj_uid),
        "source": {"component": component},
        "firstTimestamp": first,
        "lastTimestamp": stamp,
        "count": count,
        "type": type_,
        "eventTime": None,
        "reportingComponent": component,
        "reportingInstance": node if component == "kubelet" else "",
    }
    if component == "kubelet":
        event["involvedObject"]["fieldPath"] = f"spec.containers{{{app}}}"
        event["source"]["host"] = node
    return event


def synthetic_events(
    total: int, seed: int = 1, versions_per_uid: int = 1, base_rv: int = 1_000_000
) -> Iterator[dict[str, Any]]:
    """``total`` events with unique (uid, resourceVersion); every ``versions_per_uid`` share a uid
    (later versions count up, as a kubelet repeating itself does)."""
    rng = random.Random(seed)
    now = datetime.now(UTC)
    uid = ""
    for i in range(total):
        version = i % versions_per_uid
        if version == 0:
            uid = str(uuid.UUID(int=rng.getrandbits(128), version=4))
        yield synthetic_event(rng, uid, base_rv + i, now, count=version + 1)


def encode(event: dict[str, Any]) -> bytes:
    """As the ingest agent encodes a raw-topic value."""
    return json.dumps(event, ensure_ascii=False, separators=(",", ":")).encode()


# -------------------------------------------------------------------------------------------- kafka


async def create_topic(bootstrap: str, name: str, partitions: int) -> None:
    from aiokafka.admin import AIOKafkaAdminClient, NewTopic

    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    try:
        await admin.create_topics([NewTopic(name, num_partitions=partitions, replication_factor=1)])
    finally:
        await admin.close()


async def produce(
    bootstrap: str,
    topic: str,
    values: Iterator[tuple[bytes, bytes]],
    limit: int,
    progress: Callable[[int], None] | None = None,
) -> int:
    """Produce (key, value) pairs as fast as the client goes; returns how many Kafka acknowledged."""
    from aiokafka import AIOKafkaProducer

    producer = AIOKafkaProducer(
        bootstrap_servers=bootstrap, acks="all", linger_ms=20, max_batch_size=1 << 20, max_request_size=4 << 20
    )
    await producer.start()
    done = 0
    try:
        pending: list[asyncio.Future[Any]] = []
        for key, value in values:
            if done + len(pending) >= limit:
                break
            pending.append(await producer.send(topic, value=value, key=key))
            if len(pending) >= 5000:
                await asyncio.gather(*pending)
                done += len(pending)
                pending = []
                if progress:
                    progress(done)
        await asyncio.gather(*pending)
        done += len(pending)
        if progress:
            progress(done)
    finally:
        await producer.stop()
    return done


class OffsetWatcher:
    """Sum of the end offsets of a topic (how many records it holds, all partitions)."""

    def __init__(self, bootstrap: str, topic: str) -> None:
        self.bootstrap = bootstrap
        self.topic = topic
        self._consumer: Any = None
        self._partitions: list[Any] = []

    async def start(self) -> None:
        from aiokafka import AIOKafkaConsumer

        self._consumer = AIOKafkaConsumer(bootstrap_servers=self.bootstrap, enable_auto_commit=False)
        await self._consumer.start()

    async def total(self) -> int:
        from aiokafka import TopicPartition

        if not self._partitions:
            parts = await self._consumer._client.fetch_all_metadata()
            found = parts.partitions_for_topic(self.topic)
            if not found:
                return 0
            self._partitions = [TopicPartition(self.topic, p) for p in sorted(found)]
        offsets = await self._consumer.end_offsets(self._partitions)
        return int(sum(offsets.values()))

    async def stop(self) -> None:
        if self._consumer is not None:
            await self._consumer.stop()


# ------------------------------------------------------------------------------------ elasticsearch


def es_client(stack: dict[str, str]) -> Any:
    from elasticsearch import Elasticsearch

    return Elasticsearch(stack["DEVSTACK_ELASTICSEARCH_URL"], request_timeout=60)


def es_count(es: Any, prefix: str) -> int:
    """Documents searchable under ``<prefix>-*`` (refreshed ones only: what a search sees)."""
    try:
        found = es.count(index=f"{prefix}-*", allow_no_indices=True, ignore_unavailable=True)
    except Exception:
        return 0
    return int(found["count"])


def wait_count(
    es: Any, prefix: str, target: int, timeout: float, interval: float = 0.25, check: Callable[[], None] | None = None
) -> tuple[float | None, float | None, int]:
    """Poll until ``target`` documents are searchable: (first seen, all seen) monotonic times, count."""
    first: float | None = None
    count = 0
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        count = es_count(es, prefix)
        now = time.monotonic()
        if count and first is None:
            first = now
        if count >= target:
            return first, now, count
        if check:
            check()
        time.sleep(interval)
    return first, None, count


# ---------------------------------------------------------------------------------------- kubernetes


def kube_api(kubeconfig: str) -> Any:
    from kubernetes import client, config

    api = config.new_client_from_config(config_file=kubeconfig)
    api.configuration.connection_pool_maxsize = 32
    return client.CoreV1Api(api)


def create_namespace(kubeconfig: str, name: str) -> None:
    kube_api(kubeconfig).create_namespace({"metadata": {"name": name, "labels": {"purpose": "bench"}}})


def event_body(namespace: str, name: str, serial: int) -> dict[str, Any]:
    """An Event as a kubelet writes it (core/v1), about as large as a real one."""
    stamp = rfc3339(datetime.now(UTC))
    app = _APPS[serial % len(_APPS)]
    return {
        "metadata": {"name": name, "namespace": namespace},
        "involvedObject": {
            "kind": "Pod",
            "namespace": namespace,
            "name": f"{app}-7d4b9c{serial % 10}-{serial:06d}",
            "uid": str(uuid.uuid4()),
            "apiVersion": "v1",
            "fieldPath": f"spec.containers{{{app}}}",
        },
        "reason": "Pulled",
        "message": f'Container image "registry.example.com/{app}:1.{serial % 10}.3" already present on machine',
        "type": "Normal",
        "count": 1,
        "firstTimestamp": stamp,
        "lastTimestamp": stamp,
        "source": {"component": "kubelet", "host": _NODES[serial % len(_NODES)]},
        "reportingComponent": "kubelet",
        "reportingInstance": _NODES[serial % len(_NODES)],
    }


@dataclass(frozen=True, slots=True)
class Created:
    """One event the API server confirmed: its document id and when (time.time()) it was sent and confirmed."""

    doc_id: str
    sent: float
    confirmed: float

    @property
    def uid(self) -> str:
        return self.doc_id.split(":", 1)[0]


@dataclass
class GeneratorResult:
    created: list[Created] = field(default_factory=list)
    errors: int = 0
    first_error: str = ""
    seconds: float = 0.0

    @property
    def rate(self) -> float:
        return len(self.created) / self.seconds if self.seconds else 0.0


class KubeWriter:
    """Creates events over concurrent raw HTTP (aiohttp), with the kubeconfig's credentials."""

    def __init__(self, kubeconfig: str, concurrency: int) -> None:
        from kubernetes import client, config

        cfg = client.Configuration()
        config.load_kube_config(config_file=kubeconfig, client_configuration=cfg)
        self.host = cfg.host.rstrip("/")
        if not self.host.startswith("https://127.0.0.1"):
            raise SystemExit(f"bench: the API server must be on 127.0.0.1, not {self.host}")
        self._ssl = ssl.create_default_context(cafile=cfg.ssl_ca_cert)
        if cfg.cert_file and cfg.key_file:
            self._ssl.load_cert_chain(cfg.cert_file, cfg.key_file)
        self._headers = {"Content-Type": "application/json", "Accept": "application/json"}
        for auth in cfg.auth_settings().values():
            if auth.get("in") == "header" and auth.get("value"):
                self._headers[auth["key"]] = auth["value"]
        self.concurrency = concurrency

    async def run(
        self,
        namespace: str,
        total: int,
        rate: float | None,
        max_seconds: float,
        on_created: Callable[[Created], None] | None = None,
        name_prefix: str = "ev",
    ) -> GeneratorResult:
        """Create ``total`` events, paced at ``rate`` per second (None: as fast as the server takes
        them), in at most ``max_seconds`` (issuing stops then; what was in flight completes)."""
        import aiohttp

        result = GeneratorResult()
        url = f"{self.host}/api/v1/namespaces/{namespace}/events"
        connector = aiohttp.TCPConnector(ssl=self._ssl, limit=self.concurrency)
        slots = asyncio.Semaphore(self.concurrency)
        timeout = aiohttp.ClientTimeout(total=30)
        async with aiohttp.ClientSession(connector=connector, headers=self._headers, timeout=timeout) as session:

            async def create(serial: int) -> None:
                try:
                    body = json.dumps(event_body(namespace, f"{name_prefix}-{serial:07d}", serial))
                    sent = time.time()
                    async with session.post(url, data=body) as resp:
                        payload = await resp.read()
                        confirmed = time.time()
                        if resp.status != 201:
                            result.errors += 1
                            result.first_error = result.first_error or f"{resp.status}: {payload[:200]!r}"
                            return
                    meta = json.loads(payload)["metadata"]
                    made = Created(f"{meta['uid']}:{meta['resourceVersion']}", sent, confirmed)
                    result.created.append(made)
                    if on_created:
                        on_created(made)
                except Exception as exc:
                    result.errors += 1
                    result.first_error = result.first_error or repr(exc)[:200]
                finally:
                    slots.release()

            loop = asyncio.get_running_loop()
            started = loop.time()
            tasks = set()
            for serial in range(total):
                if rate:
                    delay = started + serial / rate - loop.time()
                    if delay > 0:
                        await asyncio.sleep(delay)
                if loop.time() - started > max_seconds:
                    break
                await slots.acquire()
                task = asyncio.create_task(create(serial))
                tasks.add(task)
                task.add_done_callback(tasks.discard)
            if tasks:
                await asyncio.wait(tasks, timeout=60)
            result.seconds = loop.time() - started
        return result


def _generator_main(
    kubeconfig: str,
    namespace: str,
    total: int,
    rate: float | None,
    max_seconds: float,
    concurrency: int,
    name_prefix: str,
    out: Any,
) -> None:
    """The body of :class:`GeneratorProcess` (a spawned process: its own CPU and event loop)."""
    batch: list[tuple[str, float, float]] = []
    last = time.monotonic()

    def created(made: Created) -> None:
        nonlocal last
        batch.append((made.doc_id, made.sent, made.confirmed))
        if time.monotonic() - last > 0.05:
            out.put(("created", list(batch)))
            batch.clear()
            last = time.monotonic()

    writer = KubeWriter(kubeconfig, concurrency)
    result = asyncio.run(writer.run(namespace, total, rate, max_seconds, created, name_prefix))
    if batch:
        out.put(("created", list(batch)))
    out.put(("done", (len(result.created), result.errors, result.first_error, result.seconds)))


class GeneratorProcess:
    """Writes events into the API server from another process; ``poll`` yields what it confirmed."""

    def __init__(
        self,
        kubeconfig: str,
        namespace: str,
        *,
        total: int,
        rate: float | None,
        max_seconds: float,
        concurrency: int = 64,
        name_prefix: str = "ev",
    ) -> None:
        context = multiprocessing.get_context("spawn")
        self._queue: Any = context.Queue()
        self._proc = context.Process(
            target=_generator_main,
            args=(kubeconfig, namespace, total, rate, max_seconds, concurrency, name_prefix, self._queue),
            daemon=True,
        )
        self.max_seconds = max_seconds
        self.result = GeneratorResult()
        self.done = False

    def start(self) -> GeneratorProcess:
        self._proc.start()
        return self

    def poll(self, wait: float = 0.0) -> list[Created]:
        """What was confirmed since the last call (waits up to ``wait`` for the first batch)."""
        got: list[Created] = []
        block = wait > 0
        while True:
            try:
                kind, payload = self._queue.get(block, wait) if block else self._queue.get_nowait()
            except queue_module.Empty:
                break
            block = False
            if kind == "created":
                made = [Created(*item) for item in payload]
                got.extend(made)
                self.result.created.extend(made)
            else:
                _, self.result.errors, self.result.first_error, self.result.seconds = payload
                self.done = True
        return got

    def join(self, timeout: float | None = None) -> GeneratorResult:
        deadline = time.monotonic() + (timeout if timeout is not None else self.max_seconds + 120)
        while not self.done and time.monotonic() < deadline:
            self.poll(wait=0.5)
            if not self._proc.is_alive() and not self.done:
                self.poll(wait=0.5)
                break
        self._proc.join(5)
        if self._proc.is_alive():
            self._proc.kill()
        return self.result


def create_events_fast(
    kubeconfig: str, namespace: str, total: int, concurrency: int = 64, max_seconds: float = 1800.0
) -> GeneratorResult:
    """``total`` events into ``namespace`` as fast as the API server takes them."""
    gen = GeneratorProcess(
        kubeconfig,
        namespace,
        total=total,
        rate=None,
        max_seconds=max_seconds,
        concurrency=concurrency,
        name_prefix="pre",
    ).start()
    return gen.join(max_seconds + 120)


# ---------------------------------------------------------------------------------------------- cleanup


def cleanup(stack: dict[str, str], name: str, *, namespace: str | None = None, prefixes: Sequence[str] = ()) -> None:
    """Delete what a run made (see devstack.scratch.drop_app)."""
    scratch.drop_app(stack, name, prefixes=prefixes, namespace=namespace)


# --------------------------------------------------------------------------------------------- stats


def percentile(values: Sequence[float], pct: float) -> float:
    """Nearest-rank percentile (0 for no values)."""
    if not values:
        return 0.0
    ordered = sorted(values)
    rank = max(1, math.ceil(pct / 100 * len(ordered)))
    return ordered[min(rank, len(ordered)) - 1]


# -------------------------------------------------------------------------------------------- report


def machine() -> dict[str, str]:
    cpu = "?"
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    mem = "?"
    with contextlib.suppress(OSError):
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                mem = f"{int(line.split()[1]) / 1024 / 1024:.1f} GiB"
    load = " ".join(f"{x:.2f}" for x in os.getloadavg())
    versions = {}
    for package in ("faust-streaming", "aiokafka", "elasticsearch", "kubernetes"):
        with contextlib.suppress(importlib.metadata.PackageNotFoundError):
            versions[package] = importlib.metadata.version(package)
    return {
        "cores": str(os.cpu_count()),
        "cpu": cpu,
        "memory": mem,
        "load average at start": load,
        "python": platform.python_version(),
        **versions,
    }


def server_versions(stack: dict[str, str]) -> dict[str, str]:
    out: dict[str, str] = {}
    with contextlib.suppress(Exception):
        out["elasticsearch server"] = str(es_client(stack).info()["version"]["number"])
    with contextlib.suppress(Exception):
        from kubernetes import client, config

        api = config.new_client_from_config(config_file=stack["KUBECONFIG"])
        out["kube-apiserver"] = str(client.VersionApi(api).get_code().git_version)
    return out


class Report:
    """Sections of (label, value) rows, printed aligned and saved as JSON under bench/out/."""

    def __init__(self, bench: str, argv: Sequence[str]) -> None:
        self.bench = bench
        self.command = " ".join([".venv/bin/python -m", f"bench.{bench}", *argv])
        self.sections: dict[str, dict[str, Any]] = {}
        self.started = datetime.now(UTC)

    def add(self, section: str, label: str, value: Any) -> None:
        self.sections.setdefault(section, {})[label] = value
        print(f"  [{section}] {label}: {value}", flush=True)

    def render(self) -> str:
        lines = [f"== bench.{self.bench}  ({self.started:%Y-%m-%d %H:%M} UTC)", f"command: {self.command}"]
        for section, rows in self.sections.items():
            lines.append(f"-- {section}")
            width = max((len(label) for label in rows), default=0)
            lines.extend(f"   {label.ljust(width)}  {value}" for label, value in rows.items())
        return "\n".join(lines)

    def save(self) -> Path:
        OUT.mkdir(parents=True, exist_ok=True)
        path = OUT / f"{self.bench}-{self.started:%Y%m%dT%H%M%S}.json"
        path.write_text(json.dumps({"command": self.command, "sections": self.sections}, indent=2, default=str))
        text_path = path.with_suffix(".txt")
        text_path.write_text(self.render() + "\n")
        return path


def log(message: str) -> None:
    print(f"{datetime.now():%H:%M:%S} {message}", flush=True)


def main(parse: Callable[[list[str] | None], Any], run: Callable[[Any], Any], argv: list[str] | None = None) -> None:
    """The command line of every benchmark: parse, run, save the report and print it."""
    report = run(parse(argv))
    path = report.save()
    print(report.render())
    print(f"saved {path}")
