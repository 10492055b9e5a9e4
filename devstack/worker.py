"""Run the real worker (``faust -A streams worker``) as a subprocess against the local stack.

The one runner of tests (``tests/fixtures/worker.py``), benchmarks and the demo. A test or a
benchmark gives each worker its own name: app id (and so consumer group), topics, index prefix,
Lease and data directory, so runs do not see each other's events, tables or documents, and
``devstack.scratch.drop_app`` can remove them all afterwards.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from devstack import offsets, transient, wait

ROOT = Path(__file__).resolve().parents[1]

#: Long enough for a first start on a loaded 2-core machine (election, topic creation, rebalance).
READY_TIMEOUT = 180.0


class WorkerExited(RuntimeError):
    """The worker process is gone (its log tail is in the message)."""


def unique_name(prefix: str) -> str:
    """A fresh lowercase name, valid as a Kafka topic, an index prefix and a namespace."""
    return f"{prefix}-{uuid.uuid4().hex[:10]}"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def worker_env(
    stack: Mapping[str, str], *, data_dir: Path, name: str | None = None, **overrides: str
) -> dict[str, str]:
    """The worker's environment on the local stack. With ``name``: app id, topics and index prefix
    of its own (a test or benchmark run); without, the defaults (the demo)."""
    env = {
        **os.environ,
        "KUBECONFIG": stack["KUBECONFIG"],
        "K8SEV_KUBECONFIG": stack["KUBECONFIG"],
        "K8SEV_BROKER": stack["DEVSTACK_KAFKA_BOOTSTRAP"],
        "K8SEV_ES_URL": stack["DEVSTACK_ELASTICSEARCH_URL"],
        # One node: a replica could never be assigned.
        "K8SEV_INDEX_REPLICAS": "0",
        "K8SEV_DATA_DIR": str(data_dir),
        "K8SEV_WEB_PORT": str(free_port()),
        "K8SEV_WEB_HOST": "127.0.0.1",
        # Not the worker's: the plaintext listener of the same broker, for our own reads of its
        # offsets when the worker itself talks SASL or TLS.
        "DEVSTACK_KAFKA_BOOTSTRAP": stack["DEVSTACK_KAFKA_BOOTSTRAP"],
    }
    if name is not None:
        env.update(
            {
                "K8SEV_APP_ID": name,
                "K8SEV_TOPIC": f"{name}-raw",
                "K8SEV_CLEAN_TOPIC": f"{name}-clean",
                "K8SEV_DEAD_LETTER_TOPIC": f"{name}-dead-letter",
                "K8SEV_INDEX_PREFIX": name,
            }
        )
    env.update(overrides)
    return env


def peer_env(env: Mapping[str, str], identity: str, **overrides: str) -> dict[str, str]:
    """Another worker of the same deployment: the same app id, topics and index, but its own web
    port, Lease identity and data directory (a RocksDB store is locked by the process that opened it)."""
    return {
        **env,
        "K8SEV_WEB_PORT": str(free_port()),
        "K8SEV_IDENTITY": identity,
        "K8SEV_DATA_DIR": f"{env['K8SEV_DATA_DIR']}-{identity}",
        **overrides,
    }


def proc_memory(pid: int) -> tuple[int, int]:
    """(VmRSS, VmHWM) of a process in bytes: resident now and its peak so far ((0, 0) if gone)."""
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


def metric(text: str, name: str, **labels: str) -> float:
    """Sum of a Prometheus metric's samples whose labels include ``labels``."""
    total = 0.0
    for line in text.splitlines():
        if not line.startswith(name) or line.startswith("#"):
            continue
        head, _, value = line.rpartition(" ")
        sample, _, label_text = head.partition("{")
        if sample != name:
            continue
        if all(f'{k}="{v}"' in label_text for k, v in labels.items()):
            total += float(value)
    return total


@dataclass
class Worker:
    """One ``faust -A streams worker`` process (one process: its RSS is the worker's)."""

    env: dict[str, str]
    log: Path
    #: What ``faust -A`` loads: the project's app, or a test's own module built on it.
    app: str = "streams"
    proc: subprocess.Popen[bytes] | None = None
    started_at: float = 0.0
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def port(self) -> int:
        return int(self.env["K8SEV_WEB_PORT"])

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def app_id(self) -> str:
        """Also the id of its Kafka consumer group (Faust's ``group_id`` is the app id)."""
        return self.env.get("K8SEV_APP_ID", "k8s-event-streams")

    @property
    def index_prefix(self) -> str:
        return self.env.get("K8SEV_INDEX_PREFIX", "k8s-event")

    @property
    def raw_topic(self) -> str:
        return self.env.get("K8SEV_TOPIC", "k8s-event")

    @property
    def clean_topic(self) -> str:
        return self.env.get("K8SEV_CLEAN_TOPIC", "k8s-event-clean")

    @property
    def pid(self) -> int:
        assert self.proc is not None, "worker not started"
        return self.proc.pid

    def start(self) -> None:
        self.log.parent.mkdir(parents=True, exist_ok=True)
        self.started_at = time.monotonic()
        with self.log.open("ab") as out:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "faust", "-A", self.app, "worker", "--loglevel", "info"],
                cwd=ROOT,
                env=self.env,
                stdout=out,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                start_new_session=True,
            )

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def check(self) -> None:
        """Raise :class:`WorkerExited` if the process is gone: a wait on it can stop at once."""
        if not self.alive():
            code = self.proc.returncode if self.proc else None
            raise WorkerExited(f"worker exited ({code}); log {self.log}:\n{self.tail()}")

    def get(self, path: str, timeout: float = 5.0) -> tuple[int, bytes]:
        """(status, body) of a GET on the worker's web server; OSError if it does not answer."""
        try:
            with urllib.request.urlopen(self.url + path, timeout=timeout) as resp:  # noqa: S310 - loopback
                return int(resp.status), resp.read()
        except urllib.error.HTTPError as exc:
            return exc.code, exc.read()

    def wait_ready(self, timeout: float = READY_TIMEOUT) -> None:
        """Until ``/readyz`` answers 200; :class:`WorkerExited` at once if the process dies."""

        def ready() -> int:
            self.check()
            return self.get("/readyz", timeout=2)[0]

        wait.until(
            f"worker {self.app_id} ready (/readyz 200)",
            ready,
            timeout=timeout,
            interval=0.25,
            ready=lambda status: status == 200,
            not_yet=transient.http,
            detail=lambda: f"log {self.log}:\n{self.tail()}",
        )

    def wait_consumed(self, timeout: float = 120.0) -> offsets.Progress:
        """Until its consumer group has committed the end of the raw and clean topics: every record
        on them was processed by every agent, so nothing more is on its way to the index."""
        bootstrap = self.env.get("DEVSTACK_KAFKA_BOOTSTRAP") or self.env["K8SEV_BROKER"]
        return offsets.caught_up_sync(bootstrap, self.app_id, [self.raw_topic, self.clean_topic], timeout)

    def stop(self, sig: signal.Signals = signal.SIGTERM, timeout: float = 60.0) -> int | None:
        """Signal the process group and wait; SIGKILL what is left after ``timeout``."""
        if self.proc is None or self.proc.poll() is not None:
            return self.proc.returncode if self.proc else None
        os.killpg(self.proc.pid, sig)
        try:
            return self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            os.killpg(self.proc.pid, signal.SIGKILL)
            return self.proc.wait(10)

    def kill(self) -> None:
        """SIGKILL: no goodbye to the consumer group, no lease release, no final checkpoint."""
        self.stop(signal.SIGKILL)

    def restart(self) -> None:
        self.start()
        self.wait_ready()

    def memory(self) -> tuple[int, int]:
        """(VmRSS, VmHWM) in bytes: resident now and its peak so far ((0, 0) when not running)."""
        return proc_memory(self.pid) if self.alive() else (0, 0)

    def rss_bytes(self) -> int:
        return self.memory()[0]

    def metrics(self) -> str:
        """``/metrics`` as text ("" if the worker does not answer 200)."""
        status, body = self.get("/metrics")
        return body.decode(errors="replace") if status == 200 else ""

    def tail(self, lines: int = 60) -> str:
        try:
            return "\n".join(self.log.read_text(errors="replace").splitlines()[-lines:])
        except FileNotFoundError:
            return "(no log)"

    def log_events(self, event: str) -> list[dict[str, str]]:
        """The worker's structured log lines ``event=<event> k=v ...`` as dicts."""
        try:
            text = self.log.read_text(errors="replace")
        except FileNotFoundError:
            return []
        found = []
        for line in text.splitlines():
            at = line.find(f"event={event} ")
            if at < 0 and not line.endswith(f"event={event}"):
                continue
            at = at if at >= 0 else line.rfind(f"event={event}")
            fields = {}
            for part in line[at:].split():
                key, _, value = part.partition("=")
                fields[key] = value.strip('"')
            found.append(fields)
        return found
