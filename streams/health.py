"""What /healthz and /readyz report: liveness of the worker's parts and reachability of its peers.

Each part sets its own status here; the web views only read. A part that is not running in this
worker (the watch with ``K8SEV_INGEST=false``) is simply absent.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field


@dataclass
class Check:
    ok: bool = False
    detail: str = "starting"
    since: float = field(default_factory=time.time)


class Health:
    def __init__(self) -> None:
        self.checks: dict[str, Check] = {}

    def set(self, name: str, ok: bool, detail: str = "") -> None:
        current = self.checks.get(name)
        if current is None or current.ok != ok or current.detail != detail:
            self.checks[name] = Check(ok, detail)

    def report(self) -> tuple[bool, dict[str, dict[str, object]]]:
        body = {
            name: {"ok": c.ok, "detail": c.detail, "since": round(c.since, 3)}
            for name, c in sorted(self.checks.items())
        }
        return all(c.ok for c in self.checks.values()), body


#: Readiness: can this worker do its job now (watch streaming, Kafka and the search engine reachable)?
READINESS = Health()
