"""The ingest checkpoint: per watched scope, the last resourceVersion whose events Kafka acknowledged.

The elector writes it into the Lease (:data:`CHECKPOINT_ANNOTATION`, JSON) with each renewal, so it
moves with leadership (:mod:`streams.ingest.election`); the controller keeps it current.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass, field
from datetime import UTC, datetime

from streams.core import logs

log = logging.getLogger(__name__)

CHECKPOINT_ANNOTATION = "k8s-event-streams.io/checkpoint"


@dataclass
class Checkpoint:
    """Per watched scope: the resourceVersion reached and when (ISO 8601, UTC)."""

    scopes: dict[str, dict[str, str]] = field(default_factory=dict)

    def get(self, scope: str) -> tuple[str, datetime] | None:
        entry = self.scopes.get(scope)
        if not entry or not entry.get("resourceVersion"):
            return None
        try:
            when = datetime.fromisoformat(entry["time"])
        except (KeyError, ValueError):
            when = datetime.now(UTC)
        return entry["resourceVersion"], when

    def set(self, scope: str, resource_version: str, when: datetime) -> None:
        self.scopes[scope] = {"resourceVersion": resource_version, "time": when.isoformat()}

    def encode(self) -> str:
        return json.dumps(self.scopes, sort_keys=True, separators=(",", ":"))

    @classmethod
    def decode(cls, text: str | None) -> Checkpoint:
        try:
            value = json.loads(text or "{}")
        except json.JSONDecodeError:
            logs.warning(log, "checkpoint_unreadable", annotation=(text or "")[:200])
            return cls()
        if not isinstance(value, dict):
            return cls()
        return cls({k: v for k, v in value.items() if isinstance(v, dict)})


def micro_time(when: datetime) -> str:
    return when.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
