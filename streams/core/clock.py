"""Time, injected: the watcher, the elector and the ingest controller read it only through a :class:`Clock`.

Two clocks, as client-go's ``clock.Clock`` has: ``monotonic`` measures durations (timeouts,
deadlines, how long a Lease record stayed unchanged) and never jumps; ``now`` is the wall clock
written into Lease records and checkpoints. Tests pass a fake that moves only when told.
"""

from __future__ import annotations

import threading
import time
from datetime import UTC, datetime
from typing import Protocol


class Clock(Protocol):
    def monotonic(self) -> float:
        """Seconds from an arbitrary origin; only differences mean anything."""
        ...

    def now(self) -> datetime:
        """The wall clock, aware, UTC."""
        ...

    def wait(self, stop: threading.Event, seconds: float) -> bool:
        """Block up to ``seconds`` or until ``stop`` is set; True if it is set."""
        ...


class SystemClock:
    """The real clocks."""

    def monotonic(self) -> float:
        return time.monotonic()

    def now(self) -> datetime:
        return datetime.now(UTC)

    def wait(self, stop: threading.Event, seconds: float) -> bool:
        return stop.wait(seconds)


SYSTEM = SystemClock()
