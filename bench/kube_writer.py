"""Kubernetes Events written into the API server fast: raw concurrent HTTP from another process."""

from __future__ import annotations

import asyncio
import contextlib
import json
import multiprocessing
import queue as queue_module
import ssl
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from bench.synthetic import APPS, NODES, rfc3339
from devstack import wait


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
    app = APPS[serial % len(APPS)]
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
        "source": {"component": "kubelet", "host": NODES[serial % len(NODES)]},
        "reportingComponent": "kubelet",
        "reportingInstance": NODES[serial % len(NODES)],
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

    @classmethod
    def paced(cls, kubeconfig: str, namespace: str, rate: float, duration: float, concurrency: int) -> GeneratorProcess:
        """``rate`` events per second for ``duration`` seconds, started; names say the rate."""
        return cls(
            kubeconfig,
            namespace,
            total=int(rate * duration),
            rate=rate,
            max_seconds=duration,
            concurrency=concurrency,
            name_prefix=f"r{int(rate)}",
        ).start()

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
        """Everything it confirmed, once it is done (or has died, or ``timeout`` passed: then what
        it confirmed so far)."""

        def finished() -> bool:
            self.poll(wait=0.5)
            return self.done or not self._proc.is_alive()

        limit = timeout if timeout is not None else self.max_seconds + 120
        with contextlib.suppress(wait.WaitTimeout):
            wait.until("the event generator to finish", finished, timeout=limit, interval=0)
        if not self.done:
            self.poll(wait=0.5)  # what it sent just before it exited
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
