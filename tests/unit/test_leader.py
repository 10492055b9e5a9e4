"""The Lease election against a scripted API and a fake clock: acquire, renew, stolen, deadline, release, refusals."""

from __future__ import annotations

import json
import logging
from collections.abc import Callable
from typing import TypeVar

import pytest

from streams.ingest.checkpoint import CHECKPOINT_ANNOTATION, Checkpoint
from streams.ingest.election import (
    Elector,
    LeaseHealth,
    LeaseTimings,
    Message,
    Started,
    Stopped,
)
from streams.kube.api import ApiError, Disconnected
from tests.unit.kube_fakes import FakeClock, FakeKube

M = TypeVar("M", Started, Stopped, LeaseHealth)


class Run:
    """One elector on a fake API; ``script[n]`` runs at its n-th wait (1-based); it stops after ``until`` waits."""

    def __init__(self, kube: FakeKube, until: int, script: dict[int, Callable[[Run], None]] | None = None) -> None:
        self.kube = kube
        self.messages: list[Message] = []
        self.times: list[float] = []
        self.mine: Checkpoint | None = None
        self.script = script or {}
        self.until = until
        self.clock = FakeClock(on_wait=self._on_wait)
        self.elector = Elector(
            kube,
            self.clock,
            namespace="ns",
            name="lease",
            identity="me",
            timings=LeaseTimings(duration=15, renew_deadline=10, retry_period=2),
            post=self._post,
            checkpoint_of=lambda term: self.mine,
        )

    def _post(self, message: Message) -> None:
        self.messages.append(message)
        self.times.append(self.clock.t - 1000)

    def _on_wait(self, n: int) -> None:
        if n in self.script:
            self.script[n](self)
        if n >= self.until:
            self.elector.stop(self.final)

    final: Checkpoint | None = None

    def go(self) -> Run:
        self.elector.run()
        return self

    def of(self, kind: type[M]) -> list[M]:
        return [m for m in self.messages if isinstance(m, kind)]

    def health(self) -> LeaseHealth:
        found = self.of(LeaseHealth)
        assert found
        return found[-1]


def checkpoint(rv: str) -> Checkpoint:
    c = Checkpoint()
    c.set("*", rv, FakeClock().now())
    return c


def stored(lease: dict[str, object]) -> Checkpoint:
    return Checkpoint.decode(lease["metadata"]["annotations"][CHECKPOINT_ANNOTATION])  # type: ignore[index]


def test_creates_the_lease_leads_and_renews_with_the_controllers_checkpoint() -> None:
    kube = FakeKube()

    def progress(run: Run) -> None:
        run.mine = checkpoint("42")

    run = Run(kube, until=3, script={1: progress}).go()
    assert run.of(Started) == [Started(1, Checkpoint())]
    renewals = [w for w in kube.writes if w["spec"]["holderIdentity"] == "me"]
    assert len(renewals) >= 3
    assert stored(renewals[-1]).get("*") == ("42", FakeClock().now())
    assert run.health() == LeaseHealth(True, "leading")


def test_takes_over_a_lease_unrenewed_for_its_duration_and_resumes_from_its_checkpoint() -> None:
    kube = FakeKube()
    kube.hold("dead", annotations={CHECKPOINT_ANNOTATION: checkpoint("77").encode()})
    run = Run(kube, until=10).go()
    started = run.of(Started)
    assert len(started) == 1
    resume = started[0].checkpoint.get("*")
    assert resume is not None and resume[0] == "77"
    taken = next(w for w in kube.writes if w["spec"]["holderIdentity"] == "me")
    assert taken["spec"]["leaseTransitions"] == 1
    # Not before the record stayed unchanged for the whole duration, by this worker's clock.
    assert run.times[run.messages.index(started[0])] > 15


def test_a_renewing_holder_is_left_alone() -> None:
    kube = FakeKube()
    kube.hold("peer", renew_time="t0")

    def renew(n: int) -> Callable[[Run], None]:
        return lambda run: run.kube.hold("peer", renew_time=f"t{n}")

    run = Run(kube, until=20, script={n: renew(n) for n in range(1, 21)}).go()
    assert run.of(Started) == []
    assert run.health() == LeaseHealth(True, "held by peer")


def test_a_stolen_lease_ends_the_term() -> None:
    kube = FakeKube()
    run = Run(kube, until=4, script={2: lambda run: run.kube.hold("thief", renew_time="x")}).go()
    assert run.of(Started) == [Started(1, Checkpoint())]
    assert run.of(Stopped) == [Stopped(1, "lease_taken")]
    assert not run.elector.leading


def test_renew_deadline_passed_steps_down_before_anyone_may_take_over() -> None:
    kube = FakeKube()

    def api_down(run: Run) -> None:
        run.kube.errors["read"] = Disconnected("connection refused")

    run = Run(kube, until=12, script={1: api_down}).go()
    stopped = run.of(Stopped)
    assert stopped == [Stopped(1, "renew_deadline_exceeded")]
    # The last renewal was at 0 s (before the first wait); the loss comes once the deadline (10 s)
    # passed, within one retry period, well before the lease duration (15 s) lets anyone else in.
    lost_at = run.times[run.messages.index(stopped[0])]
    assert 10 < lost_at <= 12


def test_clean_release_writes_the_final_checkpoint_and_frees_the_lease() -> None:
    kube = FakeKube()
    run = Run(kube, until=2)
    run.final = checkpoint("500")
    run.go()
    last = kube.writes[-1]
    assert last["spec"]["holderIdentity"] == ""
    assert last["spec"]["leaseDurationSeconds"] == 1
    assert stored(last).get("*") == ("500", FakeClock().now())
    assert run.of(Stopped) == [Stopped(1, "released")]


@pytest.mark.parametrize(
    ("status", "reason", "message"),
    [
        (422, "Unprocessable Entity", 'Lease.coordination.k8s.io "Bad_Name" is invalid: metadata.name: Invalid value'),
        (403, "Forbidden", 'leases.coordination.k8s.io is forbidden: User "x" cannot create resource "leases"'),
        (404, "Not Found", 'namespaces "missing" not found'),
    ],
)
def test_a_refused_create_is_logged_once_with_its_reason_and_makes_the_lease_unready(
    status: int, reason: str, message: str, caplog: pytest.LogCaptureFixture
) -> None:
    kube = FakeKube()
    kube.errors["create"] = ApiError(status, reason, message)
    with caplog.at_level(logging.ERROR, logger="streams.ingest.election"):
        run = Run(kube, until=6).go()
    health = run.health()
    assert not health.ok
    assert str(status) in health.detail and message in health.detail and "create refused" in health.detail
    logged = [r.getMessage() for r in caplog.records if "event=lease_error" in r.getMessage()]
    assert len(logged) == 1, logged
    assert f"status={status}" in logged[0] and "persistent=True" in logged[0]
    assert run.of(Started) == []


def test_a_refused_renew_is_reported_and_clears_when_it_passes() -> None:
    kube = FakeKube()

    def forbid(run: Run) -> None:
        run.kube.errors["replace"] = ApiError(403, "Forbidden", "cannot update leases")

    def allow(run: Run) -> None:
        del run.kube.errors["replace"]

    run = Run(kube, until=5, script={1: forbid, 3: allow}).go()
    healths = run.of(LeaseHealth)
    assert LeaseHealth(False, "renew refused: 403 Forbidden: cannot update leases") in healths
    assert healths[-1] == LeaseHealth(True, "leading")


def test_no_leader_for_longer_than_the_lease_duration_makes_the_lease_unready() -> None:
    kube = FakeKube()
    kube.hold("gone-worker", renew_time="frozen")
    kube.errors["replace"] = Disconnected("connection reset")  # cannot take over either
    run = Run(kube, until=12).go()
    healths = run.of(LeaseHealth)
    assert healths[0] == LeaseHealth(True, "held by gone-worker")
    assert not healths[-1].ok
    assert "no worker has led for over 15s" in healths[-1].detail
    assert "connection reset" in healths[-1].detail


def test_checkpoint_annotation_format_is_unchanged() -> None:
    c = checkpoint("12")
    assert json.loads(c.encode()) == {"*": {"resourceVersion": "12", "time": "2026-11-26T12:00:00+00:00"}}
