"""The count stage's pure part: windows, table keys, and the per-batch aggregation of occurrences.

Occurrences are counted where dedup delivers them, on the raw topic's partitions (keyed by uid), with
no repartitioning: each partition keeps its own share of every key, and a view adds the shares of
the partitions it asks about. A table key is ``<partition>|<key>``: the partition keeps the shares
apart in a worker's store and names the changelog partition that restores them after a rebalance.

``by_reason`` keys are ``<namespace>/<type>/<reason>``, ``by_kind`` keys ``<kind>/<reason>``.
Namespaces, types and kinds cannot contain ``/``; a reason might, so it comes last.
"""

from __future__ import annotations

import collections
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import timedelta

MINUTE = timedelta(minutes=1)
HOUR = timedelta(hours=1)

#: How long closed windows stay queryable.
MINUTE_EXPIRES = timedelta(hours=2)
HOUR_EXPIRES = timedelta(days=2)

#: label -> (window size, how long a closed window is kept)
WINDOWS = {"1m": (MINUTE, MINUTE_EXPIRES), "1h": (HOUR, HOUR_EXPIRES)}
WINDOW_SECONDS = {label: size.total_seconds() for label, (size, _) in WINDOWS.items()}


def reason_key(namespace: str, event_type: str, reason: str) -> str:
    return f"{namespace}/{event_type}/{reason}"


def split_reason_key(key: str) -> tuple[str, str, str]:
    namespace, event_type, reason = key.split("/", 2)
    return namespace, event_type, reason


def kind_key(kind: str, reason: str) -> str:
    return f"{kind}/{reason}"


def split_kind_key(key: str) -> tuple[str, str]:
    kind, reason = key.split("/", 1)
    return kind, reason


def partition_key(partition: int, key: str) -> str:
    return f"{partition}|{key}"


def split_partition_key(name: str) -> tuple[int, str]:
    partition, key = name.split("|", 1)
    return int(partition), key


@dataclass(frozen=True, slots=True)
class Occurrence:
    """What counting needs of one clean record."""

    time: float
    namespace: str
    type: str
    reason: str
    kind: str
    occurrences: int


#: (table family "reason" or "kind", window label, key, window start) -> occurrences
Sums = dict[tuple[str, str, str, float], int]


def window_start(label: str, when: float) -> float:
    size = WINDOW_SECONDS[label]
    return (when // size) * size


def aggregate(items: Iterable[Occurrence]) -> Sums:
    """One sum per key and window for a whole batch: one table write each instead of one per event."""
    sums: collections.Counter[tuple[str, str, str, float]] = collections.Counter()
    for item in items:
        if item.occurrences <= 0:
            continue
        by_reason = reason_key(item.namespace, item.type, item.reason)
        by_kind = kind_key(item.kind, item.reason)
        for label in WINDOWS:
            start = window_start(label, item.time)
            sums["reason", label, by_reason, start] += item.occurrences
            sums["kind", label, by_kind, start] += item.occurrences
    return dict(sums)
