"""Start-up before Faust's own: every Kafka call the worker makes before it runs, retried, with probes answering.

Faust starts its producer first and its web server after, so against a missing or frozen broker it
would hang with no log line and no probe. Here, before any of that, a small HTTP server in a thread
answers ``/healthz`` (200: alive, waiting) and ``/readyz`` (503, with the last attempt's error) on the
worker's web port, while the start-up's Kafka calls run as steps (the probe: metadata with brokers
and a controller; then the topics, the raw topic's limit), each failed attempt logged
(``event=kafka_unreachable step=...``). When every step is done, the server gives the port back to
Faust's. After ``K8SEV_KAFKA_STARTUP_TIMEOUT``, one limit for all the steps, the worker exits with
status 3 and one line (``event=startup_failed``), no traceback. A step whose answer no retry can
change (the raw topic refusing records as large as the producer sends) raises :class:`Refused`:
the worker exits at once with its status (2, a settings error).
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import sys
import threading
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from streams.core import logs
from streams.core.backoff import Backoff

log = logging.getLogger(__name__)

#: One attempt's bound: a frozen broker accepts the connection and never answers.
ATTEMPT_TIMEOUT = 5.0
EXIT_STATUS = 3


class _Server(ThreadingHTTPServer):
    # Faust's server binds the same port right after this one closes.
    allow_reuse_address = True
    daemon_threads = True


class StartupServer:
    """/healthz and /readyz on ``bind:port`` from a thread, until :meth:`close`."""

    def __init__(self, bind: str, port: int) -> None:
        self.state = "starting"
        owner = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                path = self.path.split("?", 1)[0].rstrip("/")
                if path == "/healthz":
                    status, body = 200, {"ok": True, "starting": owner.state}
                else:
                    status, body = 503, {"ok": False, "checks": {"kafka": {"ok": False, "detail": owner.state}}}
                data = json.dumps(body).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, format: str, *args: Any) -> None:
                return

        self._server = _Server((bind, port), Handler)
        self._thread = threading.Thread(target=self._server.serve_forever, name="startup-web", daemon=True)
        self._thread.start()

    def close(self) -> None:
        self._server.shutdown()
        self._server.server_close()


class Refused(Exception):
    """A start-up step's answer that retrying cannot change: the worker exits with ``status``."""

    def __init__(self, message: str, status: int = 2) -> None:
        super().__init__(message)
        self.status = status


@dataclass(frozen=True)
class Step:
    """One of the Kafka calls made before the worker runs; ``run`` must be safe to repeat."""

    name: str
    run: Callable[[], Awaitable[None]]
    #: One attempt's bound (never less than :data:`ATTEMPT_TIMEOUT`, nor more than the time left).
    timeout: float = ATTEMPT_TIMEOUT


def describe(exc: BaseException) -> str:
    """``Type: message``, once (aiokafka's errors put their type in the message already), at most 200 characters."""
    name, text = type(exc).__name__, str(exc)
    if not text:
        return name
    return (text if text.startswith(name) else f"{name}: {text}")[:200]


def attempt_bound(step: Step, left: float) -> float:
    """Seconds for one attempt of ``step`` with ``left`` seconds to the limit: its own timeout, cut to
    the time left, but never less than one probe's (the last attempt, at the limit, is a real one)."""
    return min(step.timeout, max(ATTEMPT_TIMEOUT, left))


async def wait_for_kafka(
    steps: Sequence[Step],
    *,
    brokers: str,
    give_up_after: float,
    server: StartupServer | None = None,
    clock: Callable[[], float] = time.monotonic,
    sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
) -> str | None:
    """Run ``steps`` in order, each until it returns, all within one ``give_up_after``, logging each failure.

    None when every step is done; else the name of the step still failing when time ran out
    (:class:`Refused` from a step is raised at once, never retried). A
    failed step is retried by itself: the ones before it are done, and a broker just coming back
    (its metadata without brokers for a moment after it answered the probe) passes a later step's
    call in a later attempt.
    """
    started = clock()
    backoff = Backoff(first=1.0, cap=15.0)
    attempt = 0
    for step in steps:
        while True:
            attempt += 1
            try:
                await asyncio.wait_for(step.run(), attempt_bound(step, give_up_after - (clock() - started)))
                # The broker answered: a later step's failure is a moment's, retried soon.
                backoff.reset()
                break
            except Refused:
                raise
            except Exception as exc:  # noqa: BLE001 - any failure: not reachable (or not ready) yet
                waited = clock() - started
                error = describe(exc)
                if server is not None:
                    server.state = f"waiting for Kafka ({brokers}), {step.name}, attempt {attempt}: {error}"
                if waited >= give_up_after:
                    return step.name
                delay = min(backoff.next(), max(0.0, give_up_after - waited))
                logs.warning(
                    log,
                    "kafka_unreachable",
                    attempt=attempt,
                    step=step.name,
                    brokers=brokers,
                    error=error,
                    waited=round(waited, 1),
                    gives_up_in=round(give_up_after - waited, 1),
                    retry_in=round(delay, 1),
                )
                await sleep(delay)
    if attempt > len(steps):
        logs.info(log, "kafka_reachable", attempt=attempt, brokers=brokers, waited=round(clock() - started, 1))
    return None


def give_up(brokers: str, timeout: float, step: str) -> None:
    """Exit at once, with one line that says why (nothing has started yet that needs stopping)."""
    reason = "no Kafka broker reachable" if step == "probe" else "Kafka kept failing a call before the start"
    logs.error(log, "startup_failed", reason=reason, step=step, brokers=brokers, waited=f"{timeout:g}s")
    _exit(EXIT_STATUS)


def refuse(refused: Refused) -> None:
    """Exit at once with ``refused``'s status, its message on stderr as the settings errors are."""
    print(f"k8s-event-streams: {refused}", file=sys.stderr, flush=True)
    _exit(refused.status)


def _exit(status: int) -> None:
    # From inside Faust's start (the app's first start): raising would go through Faust's crash
    # handling, a traceback and a stop of services that never started. Nothing needs stopping yet.
    for handler in logging.getLogger().handlers:
        handler.flush()
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(status)
