"""One active watcher: leader election over a coordination.k8s.io/v1 Lease, carrying the checkpoint.

Every worker with ingest enabled runs an :class:`Elector` in a thread. The holder renews the Lease
every ``retry_period``; the others try to take it when it has not been renewed for
``lease_duration`` *as they observed it* (their own monotonic clock measures how long the record
stayed unchanged, as client-go does, so clock skew between nodes does not matter). A holder that
cannot renew within ``renew_deadline`` steps down at once, before anyone else can take over.

The elector only runs the Lease protocol: what leadership means (watchers, the checkpoint) is
decided by the ingest controller on the event loop. The elector tells it through ``post``, which
the controller binds to ``loop.call_soon_threadsafe``: :class:`Started` and :class:`Stopped`
for each term, :class:`LeaseHealth` whenever what /readyz should say about the Lease changes.

The Lease also carries the ingest checkpoint: the last resourceVersion per watched scope whose
events Kafka acknowledged, as a JSON annotation written with each renewal. The checkpoint thus
moves with leadership: whoever takes over reads where the last leader got to, and only the holder
(optimistic concurrency on the Lease's resourceVersion) can move it.

The shipped ``kubernetes.leaderelection`` was not used: it stops electing after the first loss,
compares the record's renewTime with the local clock, and has no place for the checkpoint.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from streams.core import logs, metrics
from streams.core.backoff import Backoff
from streams.core.clock import Clock
from streams.ingest.checkpoint import CHECKPOINT_ANNOTATION, Checkpoint, micro_time
from streams.kube.api import HTTP_CONFLICT, HTTP_GONE, ApiError, KubeApi

log = logging.getLogger(__name__)

#: Client errors a retry will not cure (a forbidden or missing namespace, an invalid name).
_TRANSIENT_CLIENT_ERRORS = (HTTP_CONFLICT, HTTP_GONE, 408, 429)


@dataclass(frozen=True)
class Started:
    """This worker holds the Lease from now on (term ``term``); resume from ``checkpoint``."""

    term: int
    checkpoint: Checkpoint


@dataclass(frozen=True)
class Stopped:
    """Term ``term`` is over: stop watching now."""

    term: int
    reason: str


@dataclass(frozen=True)
class LeaseHealth:
    """What /readyz says about the Lease (check ``lease``)."""

    ok: bool
    detail: str


Message = Started | Stopped | LeaseHealth


@dataclass(frozen=True)
class LeaseTimings:
    duration: float = 15.0
    renew_deadline: float = 10.0
    retry_period: float = 2.0

    def __post_init__(self) -> None:
        if not self.retry_period < self.renew_deadline < self.duration:
            raise ValueError("lease timings must satisfy retry period < renew deadline < lease duration")


class Elector:
    """The election loop (:meth:`run`, a thread's body). It reads and writes the Lease and posts messages.

    ``checkpoint_of(term)`` is asked at every renewal for the checkpoint to store: the
    controller's snapshot for that term, or None (keep what the Lease holds).
    """

    def __init__(
        self,
        api: KubeApi,
        clock: Clock,
        *,
        namespace: str,
        name: str,
        identity: str,
        timings: LeaseTimings,
        post: Callable[[Message], None],
        checkpoint_of: Callable[[int], Checkpoint | None],
        backoff: Backoff | None = None,
    ) -> None:
        self._api = api
        self._clock = clock
        self.namespace = namespace
        self.name = name
        self.identity = identity
        self._timings = timings
        self._post = post
        self._checkpoint_of = checkpoint_of
        self._backoff = backoff or Backoff(timings.retry_period / 2, timings.duration)
        self._stop = threading.Event()
        self._final: Checkpoint | None = None
        self.leading = False
        self.term = 0
        self._last_renew = 0.0
        # What we last saw of someone else's record, and when (our clock).
        self._observed: tuple[str, str] | None = None
        self._observed_at = clock.monotonic()
        # When a live leader (this worker, or a record that kept changing) was last seen.
        self._leader_seen_at = clock.monotonic()
        self._holder = ""
        self._problem: tuple[str, int, str] | None = None
        self._health: LeaseHealth | None = None

    @property
    def lease(self) -> str:
        return f"{self.namespace}/{self.name}"

    def stop(self, final: Checkpoint | None = None) -> None:
        """End the loop; a holder releases the Lease, storing ``final`` (the last acknowledged checkpoint)."""
        self._final = final
        self._stop.set()

    def run(self) -> None:
        logs.info(log, "election_started", lease=self.lease, identity=self.identity)
        while not self._stop.is_set():
            delay = self._timings.retry_period
            try:
                self._step()
                self._set_problem(None)
                self._backoff.reset()
            except Exception as exc:  # noqa: BLE001 - the API may be down; leadership decides below
                self._set_problem(exc)
                delay = self._backoff.next()
                if self.leading:
                    delay = min(delay, self._timings.retry_period)
            now = self._clock.monotonic()
            if self.leading and now - self._last_renew > self._timings.renew_deadline:
                logs.warning(log, "leadership_lost", lease=self.lease, reason="renew_deadline_exceeded")
                self._set_leading(False, reason="renew_deadline_exceeded")
            self._report_health()
            if self._clock.wait(self._stop, delay):
                break
        if self.leading:
            self._release()
            self._set_leading(False, reason="released")
        logs.info(log, "election_stopped", lease=self.lease)

    def _step(self) -> None:
        now = self._clock.now()
        lease = self._api.read_lease(self.namespace, self.name)
        if lease is None:
            self._create(now)
            return
        spec = lease.get("spec") or {}
        holder = str(spec.get("holderIdentity") or "")
        self._holder = holder
        if holder == self.identity:
            self._renew(lease, now, acquired=not self.leading)
            return
        record = (holder, str(spec.get("renewTime") or ""))
        if record != self._observed:
            self._observed, self._observed_at = record, self._clock.monotonic()
            if holder:
                self._leader_seen_at = self._observed_at
        if self.leading:
            logs.warning(log, "leadership_lost", lease=self.lease, reason=f"held by {holder}")
            self._set_leading(False, reason="lease_taken")
        duration = float(spec.get("leaseDurationSeconds") or self._timings.duration)
        if not holder or self._clock.monotonic() - self._observed_at > duration:
            self._renew(lease, now, acquired=True, previous=holder)

    def _create(self, now: datetime) -> None:
        body = {
            "apiVersion": "coordination.k8s.io/v1",
            "kind": "Lease",
            "metadata": {"name": self.name, "namespace": self.namespace},
            "spec": self._spec(now, acquire=True, transitions=0),
        }
        try:
            created = self._api.create_lease(self.namespace, body)
        except ApiError as exc:
            raise _Refused("create", exc) from None
        if not created:  # someone else created it first
            self._leader_seen_at = self._clock.monotonic()
            return
        self._renewed()
        self._set_leading(True, Checkpoint())

    def _spec(self, now: datetime, *, acquire: bool, transitions: int) -> dict[str, Any]:
        spec: dict[str, Any] = {
            "holderIdentity": self.identity,
            "leaseDurationSeconds": round(self._timings.duration),
            "renewTime": micro_time(now),
            "leaseTransitions": transitions,
        }
        if acquire:
            spec["acquireTime"] = micro_time(now)
        return spec

    def _body(self, lease: dict[str, Any], spec: dict[str, Any], checkpoint: Checkpoint) -> dict[str, Any]:
        meta = lease.get("metadata") or {}
        annotations = dict(meta.get("annotations") or {})
        annotations[CHECKPOINT_ANNOTATION] = checkpoint.encode()
        return {
            "apiVersion": "coordination.k8s.io/v1",
            "kind": "Lease",
            "metadata": {
                "name": self.name,
                "namespace": self.namespace,
                # Optimistic concurrency: the update fails (409) if anyone wrote since our read.
                "resourceVersion": meta.get("resourceVersion"),
                "annotations": annotations,
            },
            "spec": spec,
        }

    @staticmethod
    def _stored(lease: dict[str, Any]) -> Checkpoint:
        annotations = (lease.get("metadata") or {}).get("annotations") or {}
        return Checkpoint.decode(annotations.get(CHECKPOINT_ANNOTATION))

    def _renew(self, lease: dict[str, Any], now: datetime, *, acquired: bool, previous: str = "") -> None:
        old = lease.get("spec") or {}
        stored = self._stored(lease)
        if not acquired:
            mine = self._checkpoint_of(self.term)
            if mine is not None:
                stored.scopes.update(mine.scopes)
        transitions = int(old.get("leaseTransitions") or 0) + (1 if acquired and previous else 0)
        spec = {**old, **self._spec(now, acquire=acquired, transitions=transitions)}
        if not acquired:
            spec["acquireTime"] = old.get("acquireTime") or micro_time(now)
        try:
            written = self._api.replace_lease(self.namespace, self.name, self._body(lease, spec, stored))
        except ApiError as exc:
            raise _Refused("renew" if not acquired else "acquire", exc) from None
        if not written:
            # Someone else wrote since our read: a live peer.
            self._leader_seen_at = self._clock.monotonic()
            return
        self._renewed()
        metrics.CHECKPOINT_WRITES.inc()
        if acquired:
            if previous:
                logs.info(log, "lease_taken_over", lease=self.lease, previous=previous)
            self._set_leading(True, stored)

    def _renewed(self) -> None:
        self._last_renew = self._leader_seen_at = self._clock.monotonic()
        self._holder = self.identity

    def _release(self) -> None:
        """On a clean shutdown, hand the Lease back at once, with the final checkpoint: one read, one write."""
        try:
            lease = self._api.read_lease(self.namespace, self.name)
            if lease is None or (lease.get("spec") or {}).get("holderIdentity") != self.identity:
                return
            stored = self._stored(lease)
            final = self._final if self._final is not None else self._checkpoint_of(self.term)
            if final is not None:
                stored.scopes.update(final.scopes)
            spec = {
                **(lease.get("spec") or {}),
                "holderIdentity": "",
                "leaseDurationSeconds": 1,
                "renewTime": micro_time(self._clock.now()),
            }
            if self._api.replace_lease(self.namespace, self.name, self._body(lease, spec, stored)):
                metrics.CHECKPOINT_WRITES.inc()
                logs.info(log, "lease_released", lease=self.lease, checkpoint=stored.encode()[:300])
            else:
                logs.warning(log, "lease_release_conflict", lease=self.lease)
        except Exception as exc:  # noqa: BLE001 - shutting down: the next holder waits one lease duration
            logs.warning(log, "lease_release_failed", lease=self.lease, error=str(exc)[:300])

    def _set_leading(self, leading: bool, checkpoint: Checkpoint | None = None, reason: str = "") -> None:
        if leading == self.leading:
            return
        self.leading = leading
        metrics.LEADER.set(1 if leading else 0)
        if leading:
            self.term += 1
            metrics.LEADER_TRANSITIONS.inc()
            logs.info(log, "leadership_acquired", lease=self.lease, identity=self.identity, term=self.term)
            self._post(Started(self.term, checkpoint or Checkpoint()))
        else:
            self._post(Stopped(self.term, reason))

    def _set_problem(self, exc: Exception | None) -> None:
        """Log the Lease's failure with its reason each time it changes (not every retry)."""
        if exc is None:
            if self._problem is not None:
                logs.info(log, "lease_ok", lease=self.lease, previous=self._problem[2][:200])
            self._problem = None
            return
        op, status = "read", 0
        if isinstance(exc, _Refused):
            op, status, text = exc.op, exc.error.status, f"{exc.op} refused: {exc.error}"
        elif isinstance(exc, ApiError):
            status, text = exc.status, f"read refused: {exc}"
        else:
            text = f"{type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}"
        problem = (op, status, text[:400])
        if problem != self._problem:
            self._problem = problem
            logs.error(
                log,
                "lease_error",
                lease=self.lease,
                operation=op,
                status=status,
                reason=text[:400],
                persistent=_persistent(status),
            )

    def _report_health(self) -> None:
        now = self._clock.monotonic()
        if self._problem is not None and _persistent(self._problem[1]):
            health = LeaseHealth(False, self._problem[2])
        elif self.leading:
            health = LeaseHealth(True, "leading")
        elif now - self._leader_seen_at > self._timings.duration:
            # Stable text (no running count), so the check changes only when the situation does.
            cause = f"; last error: {self._problem[2]}" if self._problem else ""
            health = LeaseHealth(
                False,
                f"no worker has led for over {self._timings.duration:g}s"
                f" (last holder {self._holder or 'none'!r}){cause}",
            )
        else:
            health = LeaseHealth(True, f"held by {self._holder}" if self._holder else "free")
        if health != self._health:
            self._health = health
            self._post(health)


class _Refused(Exception):
    def __init__(self, op: str, error: ApiError) -> None:
        self.op = op
        self.error = error
        super().__init__(f"{op}: {error}")


def _persistent(status: int) -> bool:
    """A client error a retry will not cure: a forbidden or missing namespace, an invalid name."""
    return 400 <= status < 500 and status not in _TRANSIENT_CLIENT_ERRORS
