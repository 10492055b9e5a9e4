"""The ingest filters: which events the watch forwards (type and reason lists from the settings)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from streams.settings import KubeSettings


@dataclass(frozen=True)
class EventFilter:
    """``filter(event)`` is None to keep the event, else the name of the filter that drops it."""

    types: frozenset[str]
    include_reasons: frozenset[str]
    exclude_reasons: frozenset[str]

    @classmethod
    def of(cls, kube: KubeSettings) -> EventFilter:
        return cls(frozenset(kube.event_types), frozenset(kube.include_reasons), frozenset(kube.exclude_reasons))

    def __call__(self, event: dict[str, Any]) -> str | None:
        if self.types and event.get("type") not in self.types:
            return "type"
        reason = event.get("reason")
        if self.include_reasons and reason not in self.include_reasons:
            return "include_reason"
        if self.exclude_reasons and reason in self.exclude_reasons:
            return "exclude_reason"
        return None
