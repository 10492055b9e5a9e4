"""The count views without a web server: query parameters and the tables' counts in, the JSON answer out.

The web adapter (:mod:`streams.ops.web`) reads this worker's share of a table, asks the other owning
workers for theirs, and hands the merged counts here; everything about windows, filters and the
answer's shape is decided here.
"""

from __future__ import annotations

import heapq
import time
from collections import Counter
from collections.abc import Awaitable, Callable, Collection, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from streams.counts.windows import WINDOWS, split_kind_key, split_partition_key, split_reason_key

MAX_TOP = 1000

MAX_AGO = 10_000
NO_COUNTS = "this worker (role {role}) keeps no count tables: ask a worker of role all or streams"


class BadRequest(ValueError):
    pass


def window(params: Mapping[str, str]) -> tuple[str, int]:
    label = params.get("window", "1m")
    if label not in WINDOWS:
        raise BadRequest(f"window must be one of {', '.join(WINDOWS)}")
    ago = params.get("ago", "0")
    if not ago.isdigit() or int(ago) > MAX_AGO:
        raise BadRequest(f"ago must be a whole number of windows back, from 0 (the current one) to {MAX_AGO}")
    return label, int(ago)


def top(params: Mapping[str, str]) -> int:
    top = params.get("top", "10")
    if not top.isdigit() or not 0 < int(top) <= MAX_TOP:
        raise BadRequest(f"top must be between 1 and {MAX_TOP}")
    return int(top)


def window_range(label: str, ago: int, now: float | None = None) -> tuple[float, float]:
    size = WINDOWS[label][0].total_seconds()
    start = ((now if now is not None else time.time()) // size - ago) * size
    return start, start + size


def local_counts(entries: Iterable[tuple[Any, Any]], start: float, owned: Callable[[int], bool]) -> dict[str, int]:
    """Counts of the window starting at ``start`` from a table's local entries, summed over the partitions
    ``owned`` accepts."""
    out: dict[str, int] = {}
    for key, value in entries:
        name, (window_start, _) = key
        if abs(window_start - start) >= 1e-3 or not value:
            continue
        partition, plain = split_partition_key(name)
        if owned(partition):
            out[plain] = out.get(plain, 0) + int(value)
    return out


def namespaces(counts: Mapping[str, int]) -> set[str]:
    """The namespaces a reason table's ``{namespace/type/reason: n}`` holds ("" for cluster-scoped objects)."""
    return {split_reason_key(key)[0] for key in counts}


def within(counts: Mapping[str, int], family: str, allowed: Collection[str] | None) -> dict[str, int]:
    """The counts a caller limited to the namespaces ``allowed`` may read (None: everything).

    The reason table's keys begin with the namespace, so a limited caller keeps its namespaces' keys
    and never the cluster-scoped ones (""), which need cluster-wide rights. The kind table's keys
    name no namespace: every one of them may hold any namespace's events, so a limited caller keeps none.
    """
    if allowed is None:
        return dict(counts)
    if family != "reason":
        return {}
    return {key: n for key, n in counts.items() if (ns := split_reason_key(key)[0]) and ns in allowed}


@dataclass(frozen=True)
class Refusal:
    """A count request refused (401, 403, 503): the answer as it goes out."""

    status: int
    body: bytes
    content_type: str
    headers: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class Admission:
    """A count request's caller as the explorer's Kubernetes gate judged it.

    ``allowed``: the namespaces it may read (None: everything); ``token``: its token, handed on to the
    peers so each checks it itself; ``note``: why the answer is empty, for the caller.
    """

    allowed: frozenset[str] | None = None
    token: str | None = None
    note: str = ""
    refusal: Refusal | None = None


#: The gate of the count views (``K8SEV_EXPLORER_AUTH=kubernetes`` only): the request's headers, the
#: family (reason or kind), the namespace asked, the namespaces in this worker's share -> the verdict.
Guard = Callable[[Mapping[str, str], str, str | None, Collection[str]], Awaitable[Admission]]


def _iso(stamp: float) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(stamp))


@dataclass(frozen=True)
class WindowQuery:
    label: str
    start: float
    end: float
    top: int

    def body(self, filters: dict[str, str | None], selected: dict[str, int], failed: list[str]) -> dict[str, Any]:
        return {
            "window": self.label,
            "start": _iso(self.start),
            "end": _iso(self.end),
            "filters": filters,
            "total": sum(selected.values()),
            "partial": failed,
        }


def query(params: Mapping[str, str]) -> WindowQuery:
    """The asked window and top; raises :class:`BadRequest`."""
    label, ago = window(params)
    most_wanted = top(params)
    start, end = window_range(label, ago)
    return WindowQuery(label, start, end, most_wanted)


#: A view's answer: the asked window, the query parameters, the whole table's counts, the peers that failed.
Answer = Callable[[WindowQuery, Mapping[str, str], dict[str, int], list[str]], dict[str, Any]]


def _most(counter: Counter[Any], top: int) -> list[tuple[Any, int]]:
    # Ties broken by name so the answer is stable between calls.
    return heapq.nsmallest(top, counter.items(), key=lambda kv: (-kv[1], kv[0]))


def reasons(asked: WindowQuery, params: Mapping[str, str], counts: dict[str, int], failed: list[str]) -> dict[str, Any]:
    """Top reasons and namespaces in one window; ``namespace`` and ``type`` filter."""
    namespace, event_type = params.get("namespace"), params.get("type")
    selected = {}
    for key, value in counts.items():
        ns, typ, _ = split_reason_key(key)
        if (namespace is None or ns == namespace) and (event_type is None or typ == event_type):
            selected[key] = value
    if params.get("raw"):
        return {"counts": selected, "partial": failed}
    by_reason: Counter[tuple[str, str]] = Counter()
    namespaces: Counter[str] = Counter()
    for key, value in selected.items():
        ns, typ, reason = split_reason_key(key)
        by_reason[(typ, reason)] += value
        namespaces[ns] += value
    body = asked.body({"namespace": namespace, "type": event_type}, selected, failed)
    body["reasons"] = [{"type": t, "reason": r, "count": c} for (t, r), c in _most(by_reason, asked.top)]
    body["namespaces"] = [{"namespace": ns, "count": c} for ns, c in _most(namespaces, asked.top)]
    return body


def kinds(asked: WindowQuery, params: Mapping[str, str], counts: dict[str, int], failed: list[str]) -> dict[str, Any]:
    """Top (involved kind, reason) pairs in one window; ``kind`` filters."""
    kind = params.get("kind")
    selected = {k: v for k, v in counts.items() if kind is None or split_kind_key(k)[0] == kind}
    if params.get("raw"):
        return {"counts": selected}
    pairs = Counter({split_kind_key(k): v for k, v in selected.items()})
    body = asked.body({"kind": kind}, selected, failed)
    body["kinds"] = [{"kind": k, "reason": r, "count": c} for (k, r), c in _most(pairs, asked.top)]
    return body
