"""The one error type the stack raises: which server, why, and where to look."""

from __future__ import annotations

from pathlib import Path


class StackError(Exception):
    """A server could not be provisioned, started, probed or stopped."""

    def __init__(self, server: str, reason: str, log: Path | None = None) -> None:
        self.server = server
        self.reason = reason
        self.log = log
        super().__init__(str(self))

    def __str__(self) -> str:
        where = f" (log: {self.log})" if self.log else ""
        return f"{self.server}: {self.reason}{where}"
