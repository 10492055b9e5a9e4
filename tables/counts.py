"""Occurrence counts in tumbling windows of one minute and one hour (see :mod:`streams.counts.windows`)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta
from typing import Any

import faust

from streams.config.settings import Settings
from streams.core import faust_compat
from streams.counts.windows import WINDOWS, Sums, partition_key

#: A few hundred keys per partition, rewritten every batch: tiny memtables and cache (4 tables x
#: partitions stores).
ROCKSDB_OPTIONS = {"write_buffer_size": 256 << 10, "max_write_buffer_number": 2, "block_cache_size": 1 << 20}


@dataclass(frozen=True)
class CountTables:
    #: window label -> windowed table keyed ``<partition>|<namespace>/<type>/<reason>``
    by_reason: dict[str, Any]
    #: window label -> windowed table keyed ``<partition>|<kind>/<reason>``
    by_kind: dict[str, Any]

    def add(self, partition: int, sums: Sums) -> None:
        """Add a batch's sums, each to the window of its own start time (the events' own time).

        Called from the dedup agent's stream with an event of ``partition`` current: the changelog
        records go to that partition, the one the keys name.
        """
        families = {"reason": self.by_reason, "kind": self.by_kind}
        for (family, label, key, start), value in sums.items():
            faust_compat.window_add(families[family][label].table, partition_key(partition, key), value, start)


def declare(app: faust.App, settings: Settings) -> CountTables:
    def table(name: str, size: timedelta, expires: timedelta, help_text: str) -> Any:
        plain = app.Table(
            name, default=int, partitions=settings.kafka.topic_partitions, help=help_text, options=ROCKSDB_OPTIONS
        )
        return plain.tumbling(size, expires=expires)

    # "occurrences-*", not the "counts-by-*" of the repartitioned design: their keys differ.
    return CountTables(
        by_reason={
            label: table(
                f"occurrences-by-reason-{label}",
                size,
                expires,
                f"occurrences per partition/namespace/type/reason, {label}",
            )
            for label, (size, expires) in WINDOWS.items()
        },
        by_kind={
            label: table(
                f"occurrences-by-kind-{label}", size, expires, f"occurrences per partition/kind/reason, {label}"
            )
            for label, (size, expires) in WINDOWS.items()
        },
    )
