"""Retention: delete daily indices older than the configured number of days."""

from __future__ import annotations

import logging
from datetime import UTC, date, datetime, timedelta

from streams.core import logs, metrics
from streams.search.client import SearchClient, index_date

log = logging.getLogger(__name__)


def expired(names: list[str], prefix: str, days: int, today: date) -> list[str]:
    """The daily indices of ``prefix`` whose day is more than ``days`` before ``today``.

    With ``days=30`` on 2026-11-30, ``k8s-event-2026.10.31`` goes and ``2026.11.01`` stays (30 days kept).
    """
    cutoff = today - timedelta(days=days)
    out = []
    for name in names:
        stamp = index_date(name, prefix)
        if stamp is None:
            continue
        try:
            day = datetime.strptime(stamp, "%Y.%m.%d").replace(tzinfo=UTC).date()
        except ValueError:
            continue
        if day <= cutoff:
            out.append(name)
    return sorted(out)


async def apply(
    client: SearchClient, prefix: str, days: int, *, today: date | None = None, dry_run: bool = False
) -> list[str]:
    """Delete the expired indices; returns their names. ``days=0`` keeps everything."""
    if days <= 0:
        return []
    today = today or datetime.now(UTC).date()
    names = expired(await client.indices(f"{prefix}-*"), prefix, days, today)
    for name in names:
        if dry_run:
            logs.info(log, "retention_would_delete", index=name, days=days)
            continue
        await client.delete_index(name)
        metrics.INDICES_DELETED.inc()
        logs.info(log, "retention_deleted", index=name, days=days)
    if not names:
        logs.info(log, "retention_nothing_to_delete", prefix=prefix, days=days)
    return names
