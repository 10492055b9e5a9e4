"""Retention on a leader-only timer, and the ``retention`` command of the Faust CLI."""

from __future__ import annotations

import logging

import faust
from faust import cli

from streams.config.settings import Settings
from streams.core import logs
from streams.retention import policy
from streams.search.client import SearchClient

log = logging.getLogger(__name__)


def install(app: faust.App, settings: Settings, client: SearchClient) -> None:
    """The leader's retention timer, through the worker's search ``client``; and the CLI command."""
    prefix, days = settings.search.index_prefix, settings.stages.retention_days

    async def apply_retention() -> None:
        if days <= 0:
            return
        try:
            await policy.apply(client, prefix, days)
        except Exception as exc:  # noqa: BLE001 - try again next period; never take the worker down
            logs.error(log, "retention_failed", error=str(exc)[:300])

    app.timer(interval=settings.stages.retention_interval, on_leader=True, name="retention")(apply_retention)

    @app.command(
        cli.option("--days", type=int, default=None, help="keep this many days (default K8SEV_RETENTION_DAYS)"),
        cli.option("--dry-run", is_flag=True, default=False, help="list what would be deleted"),
    )
    async def retention(self: cli.AppCommand, days: int | None, dry_run: bool) -> None:
        """Delete daily indices older than the retention period, now."""
        keep = settings.stages.retention_days if days is None else days
        # A command of its own process: its own client.
        own = SearchClient(settings)
        try:
            deleted = await policy.apply(own, prefix, keep, dry_run=dry_run)
        finally:
            await own.close()
        self.say(f"{'would delete' if dry_run else 'deleted'} {len(deleted)} index(es): {' '.join(deleted) or '-'}")
