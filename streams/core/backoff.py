"""One back-off for every retry loop (watch, election, sink): exponential, capped, with full jitter.

Jitter spreads the reconnects of many workers after a shared outage, so they do not hit the API
server or the search engine in lockstep (client-go's reflector does the same).
"""

from __future__ import annotations

import random
from collections.abc import Callable


class Backoff:
    """``next()`` gives the next delay: uniform in [d/2, d] with d = first * 2**attempt, capped at ``cap``."""

    def __init__(
        self, first: float = 0.5, cap: float = 30.0, *, rand: Callable[[float, float], float] = random.uniform
    ) -> None:
        self._first = first
        self._cap = cap
        self._rand = rand
        self._attempt = 0

    def next(self) -> float:
        delay = min(self._cap, self._first * (2 ** min(self._attempt, 32)))
        self._attempt += 1
        return self._rand(delay / 2, delay)

    def reset(self) -> None:
        """After a healthy stretch: the next failure starts from ``first`` again."""
        self._attempt = 0
