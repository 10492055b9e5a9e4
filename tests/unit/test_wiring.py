"""The factory's wiring: each of the three roles built in one process, each app with its own registries.

Nothing starts: the apps are built and looked at (agents, tables, tasks, views), as the worker's
``create_app`` leaves them for Faust to start.
"""

from __future__ import annotations

import asyncio

import pytest

from streams.config.settings import Settings
from streams.core import faust_compat
from streams.pipeline import App, create_app

VIEWS = {"/counts/kinds/", "/counts/reasons/", "/healthz", "/metrics", "/readyz", "/ui", "/ui/"}
STREAMS_TABLES = {
    "dedup-last",
    "occurrences-by-kind-1h",
    "occurrences-by-kind-1m",
    "occurrences-by-reason-1h",
    "occurrences-by-reason-1m",
}
STREAMS_TASKS = {"sweep", "apply_retention", "refresh"}


def build(role: str) -> App:
    return create_app(Settings.from_env({"K8SEV_ES_URL": "http://127.0.0.1:9", "K8SEV_ROLE": role}))


def tasks(app: App) -> set[str]:
    return {task.__name__ for task in faust_compat.app_tasks(app)}


async def test_the_three_roles_built_in_one_process_each_have_their_own_stages() -> None:
    apps = {role: build(role) for role in ("all", "ingest", "streams")}

    for role, app in apps.items():
        assert set(app.web.views) >= VIEWS, role
        assert {"probe_peers", "announce_settings"} <= tasks(app), role

    assert apps["ingest"].ingest is not None
    assert not apps["ingest"].agents and not apps["ingest"].tables
    assert not tasks(apps["ingest"]) & STREAMS_TASKS

    assert apps["streams"].ingest is None
    assert set(apps["streams"].agents) == {"dedup", "sink"}
    assert set(apps["streams"].tables) == STREAMS_TABLES
    assert tasks(apps["streams"]) >= STREAMS_TASKS

    assert apps["all"].ingest is not None
    assert set(apps["all"].agents) == {"dedup", "sink"}
    assert set(apps["all"].tables) == STREAMS_TABLES
    assert tasks(apps["all"]) >= STREAMS_TASKS


async def test_each_app_owns_its_readiness_and_liveness() -> None:
    first, second = build("all"), build("all")
    # Each app's web views start its Kafka and search checks as "not probed yet".
    assert set(first.health.readiness.report()[1]) == {"kafka", "search"}
    first.health.readiness.set("kafka", True, "reached")
    first.health.liveness.set("agent[sink]", False, "crashed")
    assert second.health.readiness.report()[1]["kafka"]["ok"] is False
    assert "agent[sink]" not in second.health.liveness.report()[1]


async def test_shutdown_stops_the_ingest_task_it_started_by_its_handle() -> None:
    app = build("ingest")
    stopped = asyncio.Event()
    running = asyncio.Event()

    async def ingest() -> None:
        running.set()
        try:
            await asyncio.Event().wait()
        finally:
            stopped.set()

    app.ingest = ingest
    app._start_ingest()
    assert app.ingest_task is not None
    await asyncio.wait_for(running.wait(), 5)
    await app._stop_ingest(5)
    assert stopped.is_set() and app.ingest_task.done()


@pytest.mark.parametrize("role", ["streams"])
async def test_without_ingest_shutdown_has_no_task_to_stop(role: str) -> None:
    app = build(role)
    app._start_ingest()
    assert app.ingest_task is None
    await app._stop_ingest(1)


async def test_the_worker_closes_its_one_search_client_when_it_has_stopped() -> None:
    app = build("all")
    closed: list[bool] = []

    async def close() -> None:
        closed.append(True)

    app.search.close = close  # type: ignore[method-assign]
    await app.on_shutdown()
    assert closed == [True]
