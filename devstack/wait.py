"""Wait for a condition with a deadline: the one poll loop of tests, benchmarks and the stack.

``until`` calls ``probe`` every ``interval`` seconds until ``ready(value)`` (by default: the value
is truthy) and returns that value. An exception that ``not_yet`` accepts (a server still starting,
a shard still allocating) counts as "not yet"; any other one propagates at once, so a probe can
fail early (say, when the process it waits for has exited). At the deadline it raises
:class:`WaitTimeout` naming what it waited for, with the last value and the last exception seen.
The probe runs at least once, and once more at the deadline. ``holds`` is the converse: a
condition that must stay true for a while. The clock and the sleep are injectable for unit tests.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from typing import TypeVar

T = TypeVar("T")

_UNSET = object()


class WaitTimeout(Exception):
    """A condition was not met before its deadline (or, for ``holds``, stopped holding)."""

    def __init__(self, message: str, last: object = None, error: BaseException | None = None) -> None:
        super().__init__(message)
        self.last = last
        self.error = error


def never(_: Exception) -> bool:
    """The default ``not_yet``: every exception of the probe propagates."""
    return False


class _Attempts:
    """The state one wait carries between probes: the deadline, the last value and error seen."""

    def __init__(
        self,
        what: str,
        timeout: float,
        interval: float,
        not_yet: Callable[[Exception], bool],
        detail: Callable[[], str] | None,
        clock: Callable[[], float],
    ) -> None:
        self.what, self.timeout, self.interval = what, timeout, interval
        self.not_yet, self.detail, self.clock = not_yet, detail, clock
        self.deadline = clock() + timeout
        self.last: object = _UNSET
        self.error: Exception | None = None

    def waits_out(self, exc: Exception) -> bool:
        """True if ``exc`` means "not yet" (it is remembered); False: the caller re-raises it."""
        if not self.not_yet(exc):
            return False
        self.error = exc
        return True

    def pause(self) -> float:
        """Seconds to sleep before the next probe; :class:`WaitTimeout` once the deadline passed."""
        remaining = self.deadline - self.clock()
        if remaining > 0:
            return min(self.interval, remaining)
        parts = [f"timed out after {self.timeout:g}s waiting for {self.what}"]
        parts.append(f"last value: {'(none: every probe raised)' if self.last is _UNSET else repr(self.last)}")
        if self.error is not None:
            parts.append(f"last error: {self.error!r}")
        text = "; ".join(parts)
        if self.detail:
            text = f"{text}\n{self.detail()}"
        last = None if self.last is _UNSET else self.last
        raise WaitTimeout(text, last, self.error) from self.error


def until(
    what: str,
    probe: Callable[[], T],
    *,
    timeout: float,
    interval: float = 0.5,
    ready: Callable[[T], object] = bool,
    not_yet: Callable[[Exception], bool] = never,
    detail: Callable[[], str] | None = None,
    clock: Callable[[], float] = time.monotonic,
    sleep: Callable[[float], None] = time.sleep,
) -> T:
    """``probe()`` once it is ``ready``; :class:`WaitTimeout` after ``timeout`` seconds.

    ``detail`` adds context to the timeout message (a log tail, a status).
    """
    attempts = _Attempts(what, timeout, interval, not_yet, detail, clock)
    while True:
        try:
            value = probe()
        except Exception as exc:
            if not attempts.waits_out(exc):
                raise
        else:
            if ready(value):
                return value
            attempts.last = value
        sleep(attempts.pause())


async def until_async(
    what: str,
    probe: Callable[[], Awaitable[T]],
    *,
    timeout: float,  # noqa: ASYNC109 - the deadline is what this waits on, and it reports what it saw
    interval: float = 0.5,
    ready: Callable[[T], object] = bool,
    not_yet: Callable[[Exception], bool] = never,
    detail: Callable[[], str] | None = None,
    clock: Callable[[], float] = time.monotonic,
    sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
) -> T:
    """:func:`until` for a coroutine probe; sleeps without blocking the loop."""
    attempts = _Attempts(what, timeout, interval, not_yet, detail, clock)
    while True:
        try:
            value = await probe()
        except Exception as exc:
            if not attempts.waits_out(exc):
                raise
        else:
            if ready(value):
                return value
            attempts.last = value
        await sleep(attempts.pause())


def holds(
    what: str,
    probe: Callable[[], T],
    *,
    duration: float,
    interval: float = 0.5,
    ready: Callable[[T], object] = bool,
    clock: Callable[[], float] = time.monotonic,
    sleep: Callable[[float], None] = time.sleep,
) -> T:
    """Check ``probe()`` every ``interval`` for ``duration`` seconds; :class:`WaitTimeout` the first
    time it is not ``ready``. Returns the last value. For "nothing happens" checks, which need a
    window by nature: this one looks all through it, not only at its end."""
    end = clock() + duration
    while True:
        value = probe()
        if not ready(value):
            raise WaitTimeout(f"{what} stopped holding; value: {value!r}", value)
        remaining = end - clock()
        if remaining <= 0:
            return value
        sleep(min(interval, remaining))
