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


def _message(what: str, timeout: float, last: object, error: BaseException | None, detail: str) -> str:
    parts = [f"timed out after {timeout:g}s waiting for {what}"]
    parts.append(f"last value: {'(none: every probe raised)' if last is _UNSET else repr(last)}")
    if error is not None:
        parts.append(f"last error: {error!r}")
    text = "; ".join(parts)
    return f"{text}\n{detail}" if detail else text


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
    deadline = clock() + timeout
    last: object = _UNSET
    error: Exception | None = None
    while True:
        try:
            value = probe()
        except Exception as exc:
            if not not_yet(exc):
                raise
            error = exc
        else:
            if ready(value):
                return value
            last = value
        remaining = deadline - clock()
        if remaining <= 0:
            raise WaitTimeout(_message(what, timeout, last, error, detail() if detail else ""), last, error) from error
        sleep(min(interval, remaining))


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
    deadline = clock() + timeout
    last: object = _UNSET
    error: Exception | None = None
    while True:
        try:
            value = await probe()
        except Exception as exc:
            if not not_yet(exc):
                raise
            error = exc
        else:
            if ready(value):
                return value
            last = value
        remaining = deadline - clock()
        if remaining <= 0:
            raise WaitTimeout(_message(what, timeout, last, error, detail() if detail else ""), last, error) from error
        await sleep(min(interval, remaining))


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
