"""What /healthz and /readyz report: liveness of the worker's parts and readiness to do its job.

Each part sets its own status here; the web views only read, so they answer at once whatever Kafka
or the search engine do. A part that is not running in this worker (ingest with role ``streams``
or ``K8SEV_INGEST=false``, the sink with role ``ingest``) is simply absent.

Two registries, one kind of check, both owned by the worker's app (:class:`Probes`, ``app.health``)
and handed to each part that reports (a part given none keeps its checks to itself: unit tests, benches):

* ``liveness`` (``/healthz``, 500 when any check fails): restart me, I will not get better.

  - ``beat(name, within=seconds)``: a heartbeat; the check fails once no beat came for ``within``
    seconds (the event loop's ``loop``, beaten by :mod:`streams.ops.liveness`, and watched by a
    :class:`LoopWatchdog` thread that says where the loop is stuck).
  - ``set(name, ok, detail, grace=seconds)``: a flag; a failing flag fails the check only after
    ``grace`` seconds of failing (``agent[<name>]``: a crashed actor that Faust's supervisor did
    not restart in time; ``election``: the ingest election thread died or ended).

* ``readiness`` (``/readyz``, 503 when any check fails): I cannot do my job right now: ``kafka`` or
  ``search`` unreachable (the web views' probes), ``sink`` failing for longer than
  ``K8SEV_SINK_UNREADY_AFTER``, ``lease`` not checked yet or failing, ``watch[<scope>]`` not streaming while
  leading; ``ingest`` and ``enrich`` say what this worker's ingest does (they never fail).
  ``drop(prefix)`` forgets the checks of a part that stopped here (the watches after leadership moved).
"""

from __future__ import annotations

import sys
import threading
import time
import traceback
from collections.abc import Callable
from dataclasses import dataclass, field


@dataclass
class Check:
    ok: bool = False
    detail: str = "starting"
    #: Since when the check has been ``ok`` (or not), wall clock.
    since: float = field(default_factory=time.time)
    #: A failing check reports failure only after failing this long.
    grace: float = 0.0
    #: A heartbeat: the check fails once the last beat is older than this (0: not a heartbeat).
    within: float = 0.0
    beat: float = 0.0


class Health:
    """Named checks, set from the event loop and from the watch and election threads."""

    def __init__(self, clock: Callable[[], float] = time.time) -> None:
        self._checks: dict[str, Check] = {}
        self._lock = threading.Lock()
        self._clock = clock

    def set(self, name: str, ok: bool, detail: str = "", *, grace: float = 0.0) -> None:
        with self._lock:
            current = self._checks.get(name)
            if current is None or current.ok != ok or current.within:
                self._checks[name] = Check(ok, detail, self._clock(), grace)
            else:
                current.detail, current.grace = detail, grace

    def beat(self, name: str, within: float, detail: str = "") -> None:
        """A heartbeat of ``name``: alive while the next one comes within ``within`` seconds."""
        now = self._clock()
        with self._lock:
            current = self._checks.get(name)
            if current is None or not current.within:
                self._checks[name] = Check(True, detail, now, within=within, beat=now)
            else:
                current.within, current.beat = within, now
                if detail:
                    current.detail = detail

    def age(self, name: str) -> float | None:
        """Seconds since the last heartbeat of ``name`` (None: no heartbeat of that name)."""
        with self._lock:
            check = self._checks.get(name)
            return None if check is None or not check.within else self._clock() - check.beat

    def drop(self, prefix: str) -> None:
        """Forget the checks of a part that no longer runs here (a watch after leadership moved)."""
        with self._lock:
            for name in [n for n in self._checks if n.startswith(prefix)]:
                del self._checks[name]

    def report(self) -> tuple[bool, dict[str, dict[str, object]]]:
        now = self._clock()
        with self._lock:
            checks = sorted((name, Check(**vars(c))) for name, c in self._checks.items())
        body: dict[str, dict[str, object]] = {}
        for name, c in checks:
            ok, detail = c.ok, c.detail
            if c.within:
                silent = now - c.beat
                ok = silent <= c.within
                detail = detail if ok else f"no heartbeat for {silent:.1f}s (bound {c.within:g}s)"
            elif not ok and now - c.since < c.grace:
                ok, detail = True, f"{detail} (failing for {now - c.since:.0f}s, fails after {c.grace:g}s)"
            body[name] = {"ok": ok, "detail": detail, "since": round(c.since, 3)}
        return all(b["ok"] for b in body.values()), body


@dataclass(frozen=True)
class Probes:
    """One worker's two registries."""

    #: Can this worker do its job now (watch streaming, Kafka and the search engine reachable)?
    readiness: Health = field(default_factory=Health)
    #: Is every part of this worker running (loop, agents, threads), or should it be restarted?
    liveness: Health = field(default_factory=Health)


LOOP = "loop"


class LoopWatchdog:
    """A thread that watches the event loop's heartbeat in ``health`` and reports when it stalls.

    The loop cannot answer /healthz while it is blocked (the probe then times out, which is a
    failure too); what only a thread can do is say *where* it is stuck: ``on_blocked`` gets the
    seconds blocked and the stack of the loop's thread, once per stall.
    """

    def __init__(
        self,
        health: Health,
        bound: float,
        on_blocked: Callable[[float, str], None],
        *,
        interval: float = 1.0,
    ) -> None:
        self._health = health
        self._bound = bound
        self._on_blocked = on_blocked
        self._interval = interval
        self._stop = threading.Event()
        self.loop_thread: int | None = None
        self._thread = threading.Thread(target=self._run, name="loop-watchdog", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()

    def _run(self) -> None:
        reported = False
        while not self._stop.wait(self._interval):
            age = self._health.age(LOOP)
            if age is None or age <= self._bound:
                reported = False
                continue
            if not reported:
                reported = True
                self._on_blocked(age, self._stack())

    def _stack(self) -> str:
        frame = sys._current_frames().get(self.loop_thread) if self.loop_thread is not None else None
        if frame is None:
            return ""
        return "".join(traceback.format_stack(frame)[-8:])
