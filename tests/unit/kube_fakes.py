"""Stand-ins for :class:`streams.kube.api.KubeApi` and :class:`streams.core.clock.Clock`: no server, no sleeps."""

from __future__ import annotations

import copy
import threading
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

from streams.ingest.checkpoint import Checkpoint
from streams.ingest.watch import Tagged, WatchStopped
from streams.kube.api import ApiError, Disconnected

Step = dict[str, Any] | Exception | Callable[[], Any]


class FakeClock:
    """Time moves only in :meth:`wait` (by the time waited) and :meth:`advance`; ``on_wait`` scripts each wait."""

    def __init__(self, on_wait: Callable[[int], None] | None = None) -> None:
        self.t = 1000.0
        self.start = datetime(2026, 11, 26, 12, 0, tzinfo=UTC)
        self.waits: list[float] = []
        self.on_wait = on_wait

    def monotonic(self) -> float:
        return self.t

    def now(self) -> datetime:
        return self.start + timedelta(seconds=self.t - 1000.0)

    def advance(self, seconds: float) -> None:
        self.t += seconds

    def wait(self, stop: threading.Event, seconds: float) -> bool:
        self.waits.append(seconds)
        self.t += seconds
        if self.on_wait is not None:
            self.on_wait(len(self.waits))
        return stop.is_set()


class FakeResponse:
    """A response whose body is a script: dicts are yielded, exceptions raised, callables called."""

    def __init__(self, steps: list[Step] | dict[str, Any]) -> None:
        self.steps = steps
        self.closed = False

    def json(self) -> dict[str, Any]:
        assert isinstance(self.steps, dict)
        if self.closed:
            raise Disconnected("closed")
        return self.steps

    def notifications(self) -> Iterator[dict[str, Any]]:
        assert isinstance(self.steps, list)
        for step in self.steps:
            if self.closed:
                raise Disconnected("closed")
            if isinstance(step, Exception):
                raise step
            if callable(step):
                step()
                continue
            yield step

    def close(self) -> None:
        self.closed = True


class FakeKube:
    """Events: ``lists`` and ``watches`` are consumed one per call (an exception raises, a callable is
    called and its result used). Leases: one stored object with resourceVersion bumps; ``errors`` maps
    ``read``/``create``/``replace`` to an exception raised on every such call while present."""

    def __init__(self) -> None:
        self.lists: list[Any] = []
        self.watches: list[Any] = []
        self.list_calls: list[str | None] = []
        self.watch_calls: list[str] = []
        self.responses: list[FakeResponse] = []
        self.lease: dict[str, Any] | None = None
        self.errors: dict[str, Exception] = {}
        self.writes: list[dict[str, Any]] = []
        self._rv = 0
        #: Metadata: per collection path, scripts like ``lists``/``watches``; calls recorded as (path, arg).
        self.meta_lists: dict[str, list[Any]] = {}
        self.meta_watches: dict[str, list[Any]] = {}
        self.meta_calls: list[tuple[str, str, str | None]] = []

    def _next(self, script: list[Any]) -> FakeResponse:
        step = script.pop(0)
        if callable(step):
            step = step()
        if isinstance(step, Exception):
            raise step
        response = step if isinstance(step, FakeResponse) else FakeResponse(step)
        self.responses.append(response)
        return response

    def list_events(self, namespace: str | None, *, limit: int, continue_token: str | None) -> FakeResponse:
        self.list_calls.append(continue_token)
        return self._next(self.lists)

    def watch_events(
        self, namespace: str | None, *, resource_version: str, timeout_seconds: int, idle_timeout: float
    ) -> FakeResponse:
        self.watch_calls.append(resource_version)
        return self._next(self.watches)

    def list_metadata(self, path: str, *, limit: int, continue_token: str | None) -> FakeResponse:
        self.meta_calls.append(("list", path, continue_token))
        return self._next(self.meta_lists[path])

    def watch_metadata(
        self, path: str, *, resource_version: str, timeout_seconds: int, idle_timeout: float
    ) -> FakeResponse:
        self.meta_calls.append(("watch", path, resource_version))
        return self._next(self.meta_watches[path])

    # --- leases ---

    def _fail(self, op: str) -> None:
        if op in self.errors:
            raise self.errors[op]

    def read_lease(self, namespace: str, name: str) -> dict[str, Any] | None:
        self._fail("read")
        return copy.deepcopy(self.lease)

    def create_lease(self, namespace: str, body: dict[str, Any]) -> bool:
        self._fail("create")
        if self.lease is not None:
            return False
        self._store(body)
        return True

    def replace_lease(self, namespace: str, name: str, body: dict[str, Any]) -> bool:
        self._fail("replace")
        assert self.lease is not None
        if body["metadata"].get("resourceVersion") != self.lease["metadata"]["resourceVersion"]:
            return False
        self._store(body)
        return True

    def _store(self, body: dict[str, Any]) -> None:
        self._rv += 1
        self.lease = copy.deepcopy(body)
        self.lease["metadata"]["resourceVersion"] = str(self._rv)
        self.writes.append(copy.deepcopy(self.lease))

    def hold(self, holder: str, renew_time: str = "2026-11-26T11:59:59.000000Z", annotations: Any = None) -> None:
        """Someone else writes the Lease (a peer renewing, or stealing it)."""
        spec = {"holderIdentity": holder, "leaseDurationSeconds": 15, "renewTime": renew_time}
        meta: dict[str, Any] = {"name": "lease", "namespace": "ns"}
        if self.lease is not None:
            meta = dict(self.lease["metadata"])
            spec = {**self.lease["spec"], **spec}
        if annotations is not None:
            meta["annotations"] = annotations
        self._store({"metadata": meta, "spec": spec})


class FakeThread:
    """A spawned thread that never runs: the test plays it."""

    def __init__(self, name: str = "") -> None:
        self.name = name
        self.alive = True

    def join(self, timeout: float | None = None) -> None:
        self.alive = False

    def is_alive(self) -> bool:
        return self.alive


class FakeElector:
    """An elector whose messages the test posts itself; remembers the final checkpoint it was stopped with."""

    def __init__(self) -> None:
        self.final: Checkpoint | None = None
        self.stopped = False

    def run(self) -> None:
        raise AssertionError("spawned threads are not run in these tests")

    def stop(self, final: Checkpoint | None = None) -> None:
        self.final, self.stopped = final, True


class Collect:
    """An output that keeps what the watcher hands on."""

    def __init__(self) -> None:
        self.items: list[Tagged] = []

    def put(self, tagged: Tagged, stop: threading.Event) -> None:
        if stop.is_set():
            raise WatchStopped
        self.items.append(tagged)


def event(uid: str, rv: str, **extra: Any) -> dict[str, Any]:
    return {"metadata": {"uid": uid, "resourceVersion": rv, "name": uid, "namespace": "default"}, **extra}


def page(items: list[dict[str, Any]], rv: str = "", token: str = "") -> dict[str, Any]:
    return {"metadata": {"resourceVersion": rv, "continue": token}, "items": items}


def note(kind: str, obj: dict[str, Any]) -> dict[str, Any]:
    return {"type": kind, "object": obj}


def gone() -> dict[str, Any]:
    return note("ERROR", {"code": 410, "reason": "Expired", "message": "too old resource version"})


def api_error(status: int, reason: str, message: str = "") -> ApiError:
    return ApiError(status, reason, message)
