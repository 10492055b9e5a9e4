"""The dedup decision: is this version of an event new, and how many new occurrences does it carry?

The raw topic sees the same version more than once: a relist after a watch expiry re-sends every
live event, a restarted watcher resumes from its checkpoint, Logstash-era producers re-send. Dedup
keeps, per uid, the last version it delivered and that version's occurrence count.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

Verdict = Literal["new", "duplicate", "stale"]


@dataclass(frozen=True, slots=True)
class Seen:
    """What dedup remembers of a uid: the last delivered version and its occurrence count."""

    resource_version: str
    count: int


@dataclass(frozen=True, slots=True)
class Decision:
    verdict: Verdict
    #: Occurrences this version adds (0 unless ``verdict == "new"``).
    occurrences: int

    @property
    def deliver(self) -> bool:
        return self.verdict == "new"


def compare_versions(a: str, b: str) -> int | None:
    """-1, 0 or 1 as ``a`` is older than, the same as or newer than ``b``; None if unknowable.

    resourceVersions are opaque by contract, but every API server backed by etcd writes them as
    decimal revisions, which order. Anything else only compares equal or not.
    """
    if a == b:
        return 0
    if a.isdigit() and b.isdigit():
        return -1 if int(a) < int(b) else 1
    return None


def decide(previous: Seen | None, resource_version: str, count: int) -> Decision:
    """Deliver new versions; drop repeats and versions older than the one delivered."""
    if previous is None:
        return Decision("new", count)
    order = compare_versions(resource_version, previous.resource_version)
    if order == 0:
        return Decision("duplicate", 0)
    if order is not None and order < 0:
        return Decision("stale", 0)
    # A count that shrank means the writer restarted its series; it is not negative occurrences.
    return Decision("new", max(0, count - previous.count))
