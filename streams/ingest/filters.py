"""The ingest filters: which events the watch forwards (type, reason, namespace, kind, component and
message rules from the settings).

The filter runs on the ingest loop for every event the watch sees, so it reads only the few fields
it needs, skips every rule that is not configured, and never raises: a field that is missing or of
another type than the API's simply matches no exclusion (and no inclusion). Rules are tried
cheapest first; an event several rules would drop is counted once, under the first.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

from streams.config import patterns

if TYPE_CHECKING:
    from streams.config.settings import KubeSettings

#: The filter names, the label values of ``k8sev_events_filtered_total{filter}``, in the order tried.
FILTERS = (
    "type",
    "include_reason",
    "exclude_reason",
    "exclude_namespace",
    "exclude_kind",
    "exclude_component",
    "exclude_message",
)
#: Namespace verdicts remembered (a cluster has far fewer namespaces); past this the memory starts over.
NAMESPACE_CACHE = 4096


def _text(value: Any) -> str | None:
    return value if isinstance(value, str) else None


def _field(event: dict[str, Any], outer: str, inner: str) -> str | None:
    parent = event.get(outer)
    return _text(parent.get(inner)) if isinstance(parent, dict) else None


class EventFilter:
    """``filter(event)`` is None to keep the event, else the name of the filter that drops it (one of
    :data:`FILTERS`: a bounded label, never a configured value)."""

    __slots__ = (
        "_any",
        "_namespace_verdicts",
        "exclude_components",
        "exclude_kinds",
        "exclude_message",
        "exclude_namespaces",
        "exclude_reasons",
        "include_reasons",
        "types",
    )

    def __init__(
        self,
        *,
        types: Iterable[str] = (),
        include_reasons: Iterable[str] = (),
        exclude_reasons: Iterable[str] = (),
        exclude_namespaces: Iterable[str] = (),
        exclude_kinds: Iterable[str] = (),
        exclude_components: Iterable[str] = (),
        exclude_message: str = "",
    ) -> None:
        self.types = frozenset(types)
        self.include_reasons = frozenset(include_reasons)
        self.exclude_reasons = frozenset(exclude_reasons)
        namespaces = tuple(exclude_namespaces)
        self.exclude_namespaces = patterns.Names(namespaces) if namespaces else None
        self.exclude_kinds = frozenset(exclude_kinds)
        self.exclude_components = frozenset(exclude_components)
        self.exclude_message = patterns.message_regex(exclude_message) if exclude_message else None
        self._namespace_verdicts: dict[str, bool] = {}
        self._any = any(
            (
                self.types,
                self.include_reasons,
                self.exclude_reasons,
                namespaces,
                self.exclude_kinds,
                self.exclude_components,
                exclude_message,
            )
        )

    @classmethod
    def of(cls, kube: KubeSettings) -> EventFilter:
        return cls(
            types=kube.event_types,
            include_reasons=kube.include_reasons,
            exclude_reasons=kube.exclude_reasons,
            exclude_namespaces=kube.exclude_namespaces,
            exclude_kinds=kube.exclude_kinds,
            exclude_components=kube.exclude_components,
            exclude_message=kube.exclude_message,
        )

    def __call__(self, event: dict[str, Any]) -> str | None:
        # Straight-line, the common fields inlined: this runs for every event, most rules are usually unset.
        if not self._any:
            return None
        if self.types:
            type_ = event.get("type")
            if not isinstance(type_, str) or type_ not in self.types:
                return "type"
        if self.include_reasons or self.exclude_reasons:
            reason = event.get("reason")
            if not isinstance(reason, str):
                reason = None
            if self.include_reasons and reason not in self.include_reasons:
                return "include_reason"
            if reason in self.exclude_reasons:
                return "exclude_reason"
        if self.exclude_namespaces is not None and self._namespace_excluded(self.exclude_namespaces, event):
            return "exclude_namespace"
        if self.exclude_kinds and _field(event, "involvedObject", "kind") in self.exclude_kinds:
            return "exclude_kind"
        if self.exclude_components and (
            _field(event, "source", "component") in self.exclude_components
            or _text(event.get("reportingComponent")) in self.exclude_components
        ):
            return "exclude_component"
        if self.exclude_message is not None:
            message = event.get("message")
            if isinstance(message, str) and self.exclude_message.search(message):
                return "exclude_message"
        return None

    def _namespace_excluded(self, names: patterns.Names, event: dict[str, Any]) -> bool:
        # The Event's own namespace: where the watch found it (the involved object's, or default).
        namespace = _field(event, "metadata", "namespace") or _field(event, "involvedObject", "namespace") or ""
        verdict = self._namespace_verdicts.get(namespace)
        if verdict is None:
            if len(self._namespace_verdicts) >= NAMESPACE_CACHE:
                self._namespace_verdicts.clear()
            verdict = self._namespace_verdicts[namespace] = namespace in names
        return verdict
