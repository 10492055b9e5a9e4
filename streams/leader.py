"""One active watcher: leader election over a coordination.k8s.io/v1 Lease, carrying the checkpoint.

Every worker with ingest enabled runs an :class:`Elector`. The holder renews the Lease every
``retry_period``; the others try to take it when it has not been renewed for ``lease_duration``
*as they observed it* (their own clock measures how long the record stayed unchanged, as
client-go does, so clock skew between nodes does not matter). A holder that cannot renew within
``renew_deadline`` steps down at once, before anyone else can take over.

The Lease also carries the ingest checkpoint: the last resourceVersion per watched scope whose
events Kafka acknowledged, as a JSON annotation written with each renewal. The checkpoint thus
moves with leadership: whoever takes over reads where the last leader got to, and only the holder
(optimistic concurrency on the Lease's resourceVersion) can move it.

The shipped ``kubernetes.leaderelection`` was not used: it stops electing after the first loss,
compares the record's renewTime with the local clock, and has no place for the checkpoint.
"""

from __future__ import annotations

import contextlib
import json
import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from kubernetes import client
from kubernetes.client.exceptions import ApiException

from streams import logs, metrics

log = logging.getLogger(__name__)

CHECKPOINT_ANNOTATION = "k8s-event-streams.io/checkpoint"


@dataclass
class Checkpoint:
    """Per watched scope: the resourceVersion reached and when (ISO 8601, UTC)."""

    scopes: dict[str, dict[str, str]] = field(default_factory=dict)

    def get(self, scope: str) -> tuple[str, datetime] | None:
        entry = self.scopes.get(scope)
        if not entry or not entry.get("resourceVersion"):
            return None
        try:
            when = datetime.fromisoformat(entry["time"])
        except (KeyError, ValueError):
            when = datetime.now(UTC)
        return entry["resourceVersion"], when

    def set(self, scope: str, resource_version: str, when: datetime | None = None) -> None:
        self.scopes[scope] = {
            "resourceVersion": resource_version,
            "time": (when or datetime.now(UTC)).isoformat(),
        }

    def encode(self) -> str:
        return json.dumps(self.scopes, sort_keys=True, separators=(",", ":"))

    @classmethod
    def decode(cls, text: str | None) -> Checkpoint:
        try:
            value = json.loads(text or "{}")
        except json.JSONDecodeError:
            logs.warning(log, "checkpoint_unreadable", annotation=(text or "")[:200])
            return cls()
        if not isinstance(value, dict):
            return cls()
        return cls({k: v for k, v in value.items() if isinstance(v, dict)})


def micro_time(when: datetime) -> str:
    return when.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


class Elector:
    """Runs the election loop in its own thread (:meth:`run`); calls back on every change.

    ``on_started(checkpoint)`` and ``on_stopped()`` run on the elector's thread and must return
    quickly. ``current_checkpoint()`` is asked at every renewal for the checkpoint to store.
    """

    def __init__(
        self,
        api: client.CoordinationV1Api,
        *,
        namespace: str,
        name: str,
        identity: str,
        lease_duration: float,
        renew_deadline: float,
        retry_period: float,
        on_started: Callable[[Checkpoint], None],
        on_stopped: Callable[[], None],
        current_checkpoint: Callable[[], Checkpoint | None],
    ) -> None:
        if not retry_period < renew_deadline < lease_duration:
            raise ValueError("lease timings must satisfy retry period < renew deadline < lease duration")
        self._api = api
        self.namespace = namespace
        self.name = name
        self.identity = identity
        self._duration = lease_duration
        self._deadline = renew_deadline
        self._retry = retry_period
        self._on_started = on_started
        self._on_stopped = on_stopped
        self._current_checkpoint = current_checkpoint
        self._stop = threading.Event()
        self.leading = False
        self._last_renew = 0.0
        # What we last saw of someone else's record, and when (our clock).
        self._observed: tuple[str, str] | None = None
        self._observed_at = 0.0

    def stop(self) -> None:
        self._stop.set()

    def run(self) -> None:
        logs.info(log, "election_started", lease=f"{self.namespace}/{self.name}", identity=self.identity)
        while not self._stop.is_set():
            try:
                self._step()
            except Exception as exc:  # noqa: BLE001 - the API may be down; leadership decides below
                logs.warning(log, "lease_error", lease=self.name, error=str(exc).splitlines()[0][:200])
            if self.leading and time.monotonic() - self._last_renew > self._deadline:
                logs.warning(log, "leadership_lost", lease=self.name, reason="renew_deadline_exceeded")
                self._set_leading(False, None)
            self._stop.wait(self._retry)
        if self.leading:
            self._release()
            self._set_leading(False, None)

    def _step(self) -> None:
        now = datetime.now(UTC)
        try:
            lease = self._read()
        except ApiException as exc:
            if exc.status != 404:
                raise
            self._create(now)
            return
        spec = lease.get("spec") or {}
        holder = spec.get("holderIdentity") or ""
        if holder == self.identity:
            self._renew(lease, now, acquired=not self.leading)
            return
        record = (holder, str(spec.get("renewTime") or ""))
        if record != self._observed:
            self._observed, self._observed_at = record, time.monotonic()
        if self.leading:
            logs.warning(log, "leadership_lost", lease=self.name, reason=f"held by {holder}")
            self._set_leading(False, None)
        duration = float(spec.get("leaseDurationSeconds") or self._duration)
        if not holder or time.monotonic() - self._observed_at > duration:
            self._renew(lease, now, acquired=True, previous=holder)

    def _read(self) -> dict[str, Any]:
        response = self._api.read_namespaced_lease(self.name, self.namespace, _preload_content=False)
        return dict(json.loads(response.data))

    def _create(self, now: datetime) -> None:
        body = {
            "apiVersion": "coordination.k8s.io/v1",
            "kind": "Lease",
            "metadata": {"name": self.name, "namespace": self.namespace},
            "spec": self._spec(now, acquire=True, transitions=0),
        }
        try:
            self._api.create_namespaced_lease(self.namespace, body, _preload_content=False)
        except ApiException as exc:
            if exc.status == 409:  # someone else created it first
                return
            raise
        self._last_renew = time.monotonic()
        self._set_leading(True, Checkpoint())

    def _spec(self, now: datetime, *, acquire: bool, transitions: int) -> dict[str, Any]:
        spec: dict[str, Any] = {
            "holderIdentity": self.identity,
            "leaseDurationSeconds": round(self._duration),
            "renewTime": micro_time(now),
            "leaseTransitions": transitions,
        }
        if acquire:
            spec["acquireTime"] = micro_time(now)
        return spec

    def _renew(self, lease: dict[str, Any], now: datetime, *, acquired: bool, previous: str = "") -> None:
        meta = lease.get("metadata") or {}
        spec = dict(lease.get("spec") or {})
        annotations = dict(meta.get("annotations") or {})
        stored = Checkpoint.decode(annotations.get(CHECKPOINT_ANNOTATION))
        if not acquired:
            mine = self._current_checkpoint()
            if mine is not None:
                stored.scopes.update(mine.scopes)
        annotations[CHECKPOINT_ANNOTATION] = stored.encode()
        transitions = int(spec.get("leaseTransitions") or 0) + (1 if acquired and previous else 0)
        spec.update(self._spec(now, acquire=acquired, transitions=transitions))
        if not acquired:
            spec["acquireTime"] = (lease.get("spec") or {}).get("acquireTime") or micro_time(now)
        body = {
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
        try:
            self._api.replace_namespaced_lease(self.name, self.namespace, body, _preload_content=False)
        except ApiException as exc:
            if exc.status == 409:
                return
            raise
        self._last_renew = time.monotonic()
        metrics.CHECKPOINT_WRITES.inc()
        if acquired:
            if previous:
                logs.info(log, "lease_taken_over", lease=self.name, previous=previous)
            self._set_leading(True, stored)

    def _release(self) -> None:
        """On a clean shutdown, hand the lease back at once (with the final checkpoint)."""
        with contextlib.suppress(Exception):
            lease = self._read()
            if (lease.get("spec") or {}).get("holderIdentity") != self.identity:
                return
            self._renew(lease, datetime.now(UTC), acquired=False)
            lease = self._read()
            lease["spec"]["holderIdentity"] = ""
            lease["spec"]["leaseDurationSeconds"] = 1
            self._api.replace_namespaced_lease(self.name, self.namespace, lease, _preload_content=False)
            logs.info(log, "lease_released", lease=self.name)

    def _set_leading(self, leading: bool, checkpoint: Checkpoint | None) -> None:
        if leading == self.leading:
            return
        self.leading = leading
        metrics.LEADER.set(1 if leading else 0)
        if leading:
            metrics.LEADER_TRANSITIONS.inc()
            logs.info(log, "leadership_acquired", lease=self.name, identity=self.identity)
            self._on_started(checkpoint or Checkpoint())
        else:
            self._on_stopped()
