"""What every server of the stack provides; :mod:`devstack.stack` lists them in start order."""

from __future__ import annotations

import abc
from collections.abc import Mapping, Sequence


class Server(abc.ABC):
    """One real server process of the local stack.

    ``provision`` downloads or builds into the cache (idempotent, no-op when done);
    ``start`` spawns the process through :func:`devstack.process.spawn` and returns at once;
    ``probe`` says whether it is ready to serve; ``env`` is what clients need to reach it.
    """

    name: str
    #: Servers that must be ready before this one starts.
    after: Sequence[str] = ()
    #: Seconds ``up`` waits for ``probe`` after ``start``.
    ready_timeout: float = 120.0
    #: Started when no server is named (``up``, the tests' ``stack`` fixture); False: only when named
    #: or needed by a named one. ``down``, ``status`` and ``provision`` with no name cover every server.
    default: bool = True

    @abc.abstractmethod
    def ports(self) -> Sequence[int]: ...

    @abc.abstractmethod
    def provision(self) -> None: ...

    @abc.abstractmethod
    def start(self) -> None: ...

    @abc.abstractmethod
    def probe(self) -> bool: ...

    def after_ready(self) -> None:  # noqa: B027 - optional hook, most servers need none
        """Set-up that needs the server answering (users, credentials); idempotent."""

    def env(self) -> Mapping[str, str]:
        return {}

    def describe(self) -> str:
        """One line for `status`: how to reach it by hand."""
        return ", ".join(f"127.0.0.1:{p}" for p in self.ports())
