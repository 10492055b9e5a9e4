"""The worker's resources from /proc: CPU time, and RSS sampled in a thread while a benchmark runs."""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Callable
from pathlib import Path

from devstack.worker import proc_memory

__all__ = ["RssSampler", "mib", "proc_cpu_seconds", "proc_memory", "proc_times"]


def proc_cpu_seconds(pid: int) -> float:
    """User + system CPU time the process has used so far."""
    return sum(proc_times(pid))


def proc_times(pid: int) -> tuple[float, float]:
    """(user, system) CPU seconds the process has used so far."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except (FileNotFoundError, ProcessLookupError):
        return 0.0, 0.0
    ticks = os.sysconf("SC_CLK_TCK")
    return int(fields[11]) / ticks, int(fields[12]) / ticks


class RssSampler:
    """Samples a process's RSS every ``interval`` seconds in a thread; ``mark`` adds a label."""

    def __init__(self, pid: int, interval: float = 1.0, limit: int = 100_000) -> None:
        self.pid = pid
        self.interval = interval
        self.limit = limit
        self.samples: list[tuple[float, int]] = []
        self.marks: dict[str, float] = {}
        self._progress: Callable[[], int] | None = None
        self.progress_samples: list[tuple[float, int, int]] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="rss-sampler", daemon=True)
        self.started = time.monotonic()

    def follow(self, progress: Callable[[], int]) -> None:
        """Also record ``progress()`` (say, events indexed so far) with each sample."""
        self._progress = progress

    def start(self) -> RssSampler:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(10)

    def _run(self) -> None:
        while not self._stop.is_set() and len(self.samples) < self.limit:
            rss, _ = proc_memory(self.pid)
            if rss:
                now = time.monotonic() - self.started
                self.samples.append((now, rss))
            self._stop.wait(self.interval)

    def peak(self) -> int:
        return max((rss for _, rss in self.samples), default=0)


def mib(value: float) -> float:
    return round(value / (1024 * 1024), 1)
