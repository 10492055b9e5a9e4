"""Where the stack keeps downloads, builds, data and logs.

Downloads and builds are *cache*: ``$DEVSTACK_CACHE`` or ``$XDG_CACHE_HOME/k8s-event-streams``
(default ``~/.cache/k8s-event-streams``). They survive a fresh clone, which is how CI reuses them.
Data, pid files and logs of the running servers are *state*: ``$DEVSTACK_STATE`` or
``$XDG_STATE_HOME/k8s-event-streams/devstack``.
"""

from __future__ import annotations

import os
from pathlib import Path

PROJECT = "k8s-event-streams"


def cache_dir() -> Path:
    explicit = os.environ.get("DEVSTACK_CACHE")
    if explicit:
        return Path(explicit)
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / PROJECT


def state_dir() -> Path:
    explicit = os.environ.get("DEVSTACK_STATE")
    if explicit:
        return Path(explicit)
    base = os.environ.get("XDG_STATE_HOME") or str(Path.home() / ".local" / "state")
    return Path(base) / PROJECT / "devstack"


def log_file(server: str) -> Path:
    return state_dir() / "logs" / f"{server}.log"


def data_dir(server: str) -> Path:
    return state_dir() / "data" / server


def pid_file(server: str) -> Path:
    return state_dir() / "pids" / f"{server}.pid"


def source_dir() -> Path:
    """The devstack package itself: Java sources, Go helper modules and config templates."""
    return Path(__file__).resolve().parent
