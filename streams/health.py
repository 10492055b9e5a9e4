"""What /healthz and /readyz report: liveness of the worker's parts and reachability of its peers.

Each part sets its own status here; the web views only read. A part that is not running in this
worker (the watch with ``K8SEV_INGEST=false``) is simply absent.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field


@dataclass
class Check:
    ok: bool = False
    detail: str = "starting"
    since: float = field(default_factory=time.time)


class Health:
    """Named checks, set from the event loop and from the watch and election threads."""

    def __init__(self) -> None:
        self._checks: dict[str, Check] = {}
        self._lock = threading.Lock()

    def set(self, name: str, ok: bool, detail: str = "") -> None:
        with self._lock:
            current = self._checks.get(name)
            if current is None or current.ok != ok or current.detail != detail:
                self._checks[name] = Check(ok, detail)

    def drop(self, prefix: str) -> None:
        """Forget the checks of a part that no longer runs here (a watch after leadership moved)."""
        with self._lock:
            for name in [n for n in self._checks if n.startswith(prefix)]:
                del self._checks[name]

    def report(self) -> tuple[bool, dict[str, dict[str, object]]]:
        with self._lock:
            checks = sorted(self._checks.items())
        body = {name: {"ok": c.ok, "detail": c.detail, "since": round(c.since, 3)} for name, c in checks}
        return all(c.ok for _, c in checks), body


#: Readiness: can this worker do its job now (watch streaming, Kafka and the search engine reachable)?
READINESS = Health()
