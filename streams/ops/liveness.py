"""What /healthz looks at in a running worker: the event loop's heartbeat and every agent's actors.

From the app's first start (before Kafka is reached) a task beats the app's liveness registry's
``loop`` check every :data:`BEAT_INTERVAL` and checks each agent: an actor that crashed (or ended) and was
not restarted within :data:`AGENT_RESTART_BOUND` fails ``agent[<name>]``. Faust's supervisor
restarts a crashed actor within about five seconds; one that stays down means the stage has
stopped for good. A thread (:class:`streams.core.health.LoopWatchdog`) logs where the loop is stuck
when the heartbeat stops for longer than :data:`LOOP_BLOCKED_AFTER`.
"""

from __future__ import annotations

import asyncio
import logging
import threading
from typing import Any

from streams.core import faust_compat, logs, metrics
from streams.core.health import LOOP, Health, LoopWatchdog

log = logging.getLogger(__name__)

BEAT_INTERVAL = 0.5
#: Longest stall of the event loop that still counts as alive. Faust's own blocking detector warns
#: after 10 s; a loop stuck that long misses Kafka heartbeats and every probe's timeout.
LOOP_BLOCKED_AFTER = 10.0
#: Faust's supervisor looks at crashed actors every 5 s; three rounds without a restart is for good.
AGENT_RESTART_BOUND = 15.0


def agent_problems(agent: Any) -> list[str]:
    """Why ``agent`` is not running (empty when it is): its own crash, or an actor's crash or end."""
    problems = []
    if agent.crashed:
        problems.append(f"agent crashed: {agent.crash_reason!r}"[:300])
    for actor in faust_compat.agent_actors(agent):
        task = actor.actor_task
        if actor.crashed:
            problems.append(f"actor crashed: {actor.crash_reason!r}"[:300])
        elif task is not None and task.done():
            problems.append("actor ended")
    return problems


def check_agents(app: Any, crashed: set[str], liveness: Health) -> None:
    """Set ``agent[<name>]`` in ``liveness`` for each agent; count each new crash once."""
    for name, agent in list(app.agents.items()):
        short = str(name).rsplit(".", 1)[-1]
        problems = agent_problems(agent)
        if problems and short not in crashed:
            crashed.add(short)
            if all("CancelledError" in problem for problem in problems):
                # Faust restarts an agent's actors this way on a rebalance: no crash.
                logs.info(log, "agent_restarting", agent=short, problems="; ".join(problems))
            else:
                metrics.AGENT_CRASHES.labels(agent=short).inc()
                logs.error(log, "agent_down", agent=short, problems="; ".join(problems))
        elif not problems and short in crashed:
            crashed.discard(short)
            logs.info(log, "agent_running_again", agent=short)
        liveness.set(
            f"agent[{short}]",
            not problems,
            "; ".join(problems) or "running",
            grace=AGENT_RESTART_BOUND,
        )


async def watch(app: Any, liveness: Health) -> None:
    """The heartbeat, until cancelled (it goes on while the worker stops, a stall then is news too),
    and the agent check while the app runs."""
    crashed: set[str] = set()
    while True:
        liveness.beat(LOOP, within=LOOP_BLOCKED_AFTER, detail="event loop running")
        if not app.should_stop:
            check_agents(app, crashed, liveness)
        await asyncio.sleep(BEAT_INTERVAL)


def start_watchdog(liveness: Health) -> LoopWatchdog:
    """The thread that reports a stalled loop; call from the loop's own thread."""

    def blocked(seconds: float, stack: str) -> None:
        metrics.LOOP_BLOCKED.inc()
        logs.error(log, "loop_blocked", seconds=round(seconds, 1), stack=stack[-2000:])

    watchdog = LoopWatchdog(liveness, LOOP_BLOCKED_AFTER, blocked)
    watchdog.loop_thread = threading.get_ident()
    watchdog.start()
    return watchdog
