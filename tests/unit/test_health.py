"""Liveness and readiness checks: heartbeats, grace, and a blocked event loop seen from a thread."""

from __future__ import annotations

import asyncio
import threading
import time

from streams.core.health import LOOP, Health, LoopWatchdog
from streams.ops import liveness


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_a_heartbeat_fails_once_it_is_older_than_its_bound() -> None:
    clock = Clock()
    health = Health(clock)
    health.beat("election", within=5)
    clock.now += 4
    assert health.report()[0] is True
    clock.now += 2
    ok, checks = health.report()
    assert ok is False and "no heartbeat for 6.0s" in str(checks["election"]["detail"])
    health.beat("election", within=5)
    assert health.report()[0] is True


def test_a_failing_flag_fails_only_after_its_grace_and_recovers() -> None:
    clock = Clock()
    health = Health(clock)
    health.set("agent[sink]", False, "actor crashed", grace=15)
    clock.now += 10
    health.set("agent[sink]", False, "actor crashed", grace=15)  # still failing: since is kept
    assert health.report()[0] is True
    clock.now += 6
    ok, checks = health.report()
    assert ok is False and checks["agent[sink]"]["detail"] == "actor crashed"
    health.set("agent[sink]", True, "running")
    assert health.report()[0] is True
    health.set("election", False, "thread died: RuntimeError")
    assert health.report()[0] is False


def test_a_blocked_loop_is_seen_and_reported_from_a_thread() -> None:
    health = Health()
    blocked: list[tuple[float, str]] = []
    seen = threading.Event()

    def on_blocked(seconds: float, stack: str) -> None:
        blocked.append((seconds, stack))
        seen.set()

    async def main() -> None:
        watchdog = LoopWatchdog(health, bound=0.3, on_blocked=on_blocked, interval=0.05)
        watchdog.loop_thread = threading.get_ident()
        watchdog.start()

        async def beat() -> None:
            while True:
                health.beat(LOOP, within=0.3)
                await asyncio.sleep(0.05)

        beating = asyncio.ensure_future(beat())
        await asyncio.sleep(0.2)
        assert health.report()[0] is True
        # The loop is stuck in a blocking call: only the watchdog's thread can notice.
        deadline = time.monotonic() + 5
        while not seen.is_set() and time.monotonic() < deadline:
            time.sleep(0.05)  # noqa: ASYNC251 - blocking the loop on purpose
        ok, checks = health.report()
        assert ok is False and "no heartbeat" in str(checks[LOOP]["detail"])
        await asyncio.sleep(0.2)
        assert health.report()[0] is True
        beating.cancel()
        watchdog.stop()

    asyncio.run(main())
    assert len(blocked) == 1
    seconds, stack = blocked[0]
    assert seconds > 0.3 and "test_a_blocked_loop_is_seen" in stack


class FakeActor:
    def __init__(self, crashed: bool = False, done: bool = False) -> None:
        self.crashed = crashed
        self.crash_reason = RecursionError("deep") if crashed else None
        loop = asyncio.new_event_loop()
        self.actor_task = loop.create_future()
        if done:
            self.actor_task.set_result(None)
        loop.close()


class FakeAgent:
    def __init__(self, *actors: FakeActor) -> None:
        self.crashed = False
        self.crash_reason = None
        self._actors = set(actors)


def test_an_agent_is_down_when_an_actor_crashed_or_ended() -> None:
    assert liveness.agent_problems(FakeAgent(FakeActor())) == []
    assert liveness.agent_problems(FakeAgent(FakeActor(crashed=True))) == ["actor crashed: RecursionError('deep')"]
    assert liveness.agent_problems(FakeAgent(FakeActor(done=True))) == ["actor ended"]
