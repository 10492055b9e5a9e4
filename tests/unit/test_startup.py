"""Start-up's retry of every Kafka call before the worker runs: one limit, one set of log lines."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Iterable

import pytest

from streams.ops import startup


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now

    async def sleep(self, delay: float) -> None:
        self.now += delay


def scripted(clock: Clock, outcomes: Iterable[Exception | None], calls: list[float]) -> Callable[[], Awaitable[None]]:
    """A step that fails or passes as scripted (then passes), recording when it was called."""
    left = iter(outcomes)

    async def run() -> None:
        calls.append(clock.now)
        failure = next(left, None)
        if failure is not None:
            raise failure

    return run


async def run(steps: list[startup.Step], clock: Clock, server: object = None) -> str | None:
    return await startup.wait_for_kafka(
        steps,
        brokers="b:9092",
        give_up_after=60,
        server=server,  # type: ignore[arg-type]
        clock=clock,
        sleep=clock.sleep,
    )


def lines(caplog: pytest.LogCaptureFixture, event: str) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.getMessage().startswith(f"event={event} ")]


async def test_waiting_for_kafka_logs_each_attempt_and_gives_up_in_time() -> None:
    clock = Clock()
    attempts: list[float] = []
    probe = startup.Step("probe", scripted(clock, [ConnectionError("refused")] * 1000, attempts))

    failed = await run([probe], clock)
    assert failed == "probe"
    assert len(attempts) >= 4 and attempts[-1] - attempts[0] <= 60.5

    comes_back = startup.Step("probe", scripted(clock, [ConnectionError("refused")], []))
    assert await run([comes_back], clock) is None


async def test_a_call_failing_after_the_probe_passed_is_retried_and_logged_as_the_probe_is(
    caplog: pytest.LogCaptureFixture,
) -> None:
    # The broker just resumed: it answered the probe, then its metadata had no brokers for a moment.
    clock = Clock()
    probes: list[float] = []
    listings: list[float] = []
    steps = [
        startup.Step("probe", scripted(clock, [], probes)),
        startup.Step(
            "topics", scripted(clock, [OSError("Attempt to send a request to node (node id None)")] * 2, listings)
        ),
    ]
    with caplog.at_level(logging.INFO, logger="streams.ops.startup"):
        failed = await run(steps, clock)

    assert failed is None
    assert len(probes) == 1  # a step done stays done
    assert len(listings) == 3 and listings[0] < listings[1] < listings[2]
    retries = lines(caplog, "kafka_unreachable")
    assert len(retries) == 2
    assert all("step=topics" in line and "brokers=b:9092" in line and "gives_up_in=" in line for line in retries)
    assert "attempt=2" in retries[0] and "node id None" in retries[0]
    assert [line.split(" waited=")[0] for line in lines(caplog, "kafka_reachable")] == [
        "event=kafka_reachable attempt=4 brokers=b:9092"
    ]


async def test_the_steps_share_one_time_limit() -> None:
    clock = Clock()
    probes: list[float] = []
    listings: list[float] = []
    steps = [
        startup.Step("probe", scripted(clock, [ConnectionError("refused")] * 4, probes)),
        startup.Step("topics", scripted(clock, [ConnectionError("no brokers")] * 1000, listings)),
    ]
    failed = await run(steps, clock)

    assert failed == "topics"
    assert len(probes) == 5 and len(listings) >= 2
    # The back-off starts again once the probe passed: the first retry of the listing comes soon.
    assert probes[-1] - probes[-2] > 2 and listings[1] - listings[0] <= 1
    # Not 60 s for each step: the last call is made by the limit, counted from the start.
    assert listings[-1] - probes[0] <= 60


async def test_no_log_line_when_every_step_passes_at_once(caplog: pytest.LogCaptureFixture) -> None:
    clock = Clock()
    steps = [startup.Step(name, scripted(clock, [], [])) for name in ("probe", "topics", "raw_topic")]
    with caplog.at_level(logging.INFO, logger="streams.ops.startup"):
        assert await run(steps, clock) is None
    assert not caplog.records


async def test_a_step_that_hangs_is_bounded_by_its_own_timeout_and_retried() -> None:
    # A frozen broker accepts the connection and never answers.
    clock = Clock()
    calls: list[float] = []

    async def hangs_once() -> None:
        calls.append(clock.now)
        if len(calls) == 1:
            await asyncio.Event().wait()

    server_states: list[str] = []

    class Server:
        @property
        def state(self) -> str:
            return server_states[-1]

        @state.setter
        def state(self, value: str) -> None:
            server_states.append(value)

    step = startup.Step("raw_topic", hangs_once, timeout=0.05)
    failed = await run([step], clock, Server())
    assert failed is None and len(calls) == 2
    assert len(server_states) == 1 and "raw_topic, attempt 1: TimeoutError" in server_states[0]


def test_an_attempt_gets_its_own_bound_cut_to_the_time_left_but_never_less_than_a_probe() -> None:
    topics = startup.Step("topics", lambda: asyncio.sleep(0), timeout=30)
    assert startup.attempt_bound(topics, left=60) == 30
    assert startup.attempt_bound(topics, left=10) == 10
    assert startup.attempt_bound(topics, left=0) == startup.ATTEMPT_TIMEOUT
    assert startup.attempt_bound(startup.Step("probe", lambda: asyncio.sleep(0)), left=300) == startup.ATTEMPT_TIMEOUT


def test_an_error_is_named_once_and_cut() -> None:
    class KafkaConnectionError(Exception):
        def __str__(self) -> str:
            return "KafkaConnectionError: Unable to bootstrap"

    assert startup.describe(KafkaConnectionError()) == "KafkaConnectionError: Unable to bootstrap"
    assert startup.describe(ConnectionError("refused")) == "ConnectionError: refused"
    assert startup.describe(TimeoutError()) == "TimeoutError"
    assert len(startup.describe(OSError("x" * 500))) == 200


async def test_a_refused_step_is_raised_at_once_never_retried_and_later_steps_never_run() -> None:
    clock = Clock()
    refused: list[float] = []
    later: list[float] = []
    steps = [
        startup.Step("probe", scripted(clock, [], [])),
        startup.Step("raw_topic", scripted(clock, [startup.Refused("the raw topic allows less")], refused)),
        startup.Step("after", scripted(clock, [], later)),
    ]
    with pytest.raises(startup.Refused) as caught:
        await run(steps, clock)
    assert caught.value.status == 2 and str(caught.value) == "the raw topic allows less"
    assert len(refused) == 1 and later == []
