"""Who may read which namespaces' events, by Kubernetes' own answer (``K8SEV_EXPLORER_AUTH=kubernetes``).

A bearer token is checked with a TokenReview; what the person it names may read with
SubjectAccessReviews for ``list events``. The reviews are blocking calls of the Kubernetes client
(:class:`Reviewer`, ``streams.kube.client.KubernetesReviews``): each runs in a thread, the loop only
waits for it. Answers are cached with a short TTL in a bounded cache, so a revoked RoleBinding or
token stops working within the TTL and a page's many requests cost a few reviews.

How the namespaces are found: a SubjectAccessReview for all namespaces first (cluster-wide ``view``,
an admin: everything, cluster-scoped objects' events included). Otherwise one review per namespace
that has documents in the archive (the archive says which, cached); the worker needs no right to list
namespaces for that, and namespaces without events do not matter. A SelfSubjectRulesReview is not
used: Kubernetes documents it as unfit for authorization decisions by another service (incomplete
under webhook authorizers), and it is per namespace as well.

Core ``events`` and ``events.k8s.io`` ``events`` are the same objects behind two APIs, so either
right is enough (core is asked first; ``events.k8s.io`` only when core says no).
"""

from __future__ import annotations

import asyncio
import hashlib
import time
from collections.abc import Awaitable, Callable, Hashable, Iterable
from dataclasses import dataclass
from typing import Any, Protocol, TypeVar

from cachetools import TTLCache

from streams.kube.api import Identity

# At most this many namespace reviews in flight for one listing: the API server is shared.
CONCURRENCY = 8
# A person allowed in more namespaces than this, but not cluster-wide, names the namespace to see.
MAX_NAMESPACES = 2000
GROUPS = ("", "events.k8s.io")
T = TypeVar("T")


class Reviewer(Protocol):
    """Blocking calls to the API server (run in threads)."""

    def token_review(self, token: str) -> Identity | None:
        """The token's person; None when the API server does not authenticate it."""

    def may(self, who: Identity, verb: str, group: str, resource: str, namespace: str) -> bool:
        """A SubjectAccessReview; ``namespace`` "" asks for all namespaces."""


@dataclass(frozen=True)
class Access:
    """What one request may read: ``everything``, or events of ``namespaces`` only."""

    everything: bool
    namespaces: tuple[str, ...] = ()
    forbidden: str | None = None  # an asked namespace refused: the 403 names it
    note: str = ""  # why the answer is empty or cut, for the page

    @property
    def within(self) -> tuple[str, ...] | None:
        return None if self.everything else self.namespaces


EVERYTHING = Access(everything=True)


class Gate:
    """TokenReview and SubjectAccessReview answers, cached; decisions per request."""

    def __init__(
        self,
        reviewer: Reviewer,
        namespaces: Callable[[], Awaitable[list[str]]] | None = None,
        *,
        ttl: float,
        size: int,
        timer: Callable[[], float] = time.monotonic,
    ) -> None:
        self.reviewer = reviewer
        self.archive_namespaces = namespaces
        self._tokens: TTLCache[tuple[str, str], Identity | None] = TTLCache(maxsize=size, ttl=ttl, timer=timer)
        self._reviews: TTLCache[tuple[Identity, str], bool] = TTLCache(maxsize=size, ttl=ttl, timer=timer)
        self._namespaces: TTLCache[str, list[str]] = TTLCache(maxsize=1, ttl=ttl, timer=timer)
        self.calls = 0  # reviews sent to the API server (tests and the cost note read it)
        # A review under way, by cache key: a page's first requests (search, histogram, top) come
        # together, and all wait for the one review rather than each sending its own.
        self._pending: dict[Hashable, asyncio.Future[Any]] = {}

    async def _once(self, cache: TTLCache[Any, Any], key: Hashable, compute: Callable[[], Awaitable[T]]) -> T:
        if key in cache:
            return cache[key]  # type: ignore[no-any-return]
        pending = self._pending.get(key)
        if pending is None:

            async def run() -> T:
                try:
                    value = await compute()
                    cache[key] = value
                    return value
                finally:
                    self._pending.pop(key, None)

            pending = self._pending[key] = asyncio.ensure_future(run())
        # Shielded: one caller giving up (a closed tab) does not cancel the others' answer.
        return await asyncio.shield(pending)

    async def identify(self, token: str) -> Identity | None:
        # Keyed by a digest: the cache holds no token, and a dump of it none either.
        key = hashlib.sha256(token.encode()).hexdigest()

        async def review() -> Identity | None:
            self.calls += 1
            return await asyncio.to_thread(self.reviewer.token_review, token)

        return await self._once(self._tokens, ("token", key), review)

    async def may_list(self, who: Identity, namespace: str) -> bool:
        """``list events`` in ``namespace`` ("" all), by core or events.k8s.io."""

        async def review() -> bool:
            for group in GROUPS:
                self.calls += 1
                if await asyncio.to_thread(self.reviewer.may, who, "list", group, "events", namespace):
                    return True
            return False

        return await self._once(self._reviews, (who, namespace), review)

    async def access(self, who: Identity, asked: Iterable[str], candidates: Iterable[str] | None = None) -> Access:
        """What ``who`` may read of the namespaces ``asked`` (none asked: every namespace).

        ``candidates``: the namespaces to check when none is asked, instead of the archive's (the count
        views pass those their tables hold, so they need no search engine). "" (cluster-scoped) is
        never one: only the cluster-wide review allows it.
        """
        asked = tuple(asked)
        if await self.may_list(who, ""):
            return EVERYTHING
        if asked:
            for namespace in asked:
                if not await self.may_list(who, namespace):
                    return Access(False, forbidden=namespace)
            return Access(False, asked)
        where = "of the archive" if candidates is None else "with counted events"
        names = sorted({ns for ns in candidates if ns}) if candidates is not None else await self._candidates()
        limit = asyncio.Semaphore(CONCURRENCY)

        async def check(namespace: str) -> bool:
            async with limit:
                return await self.may_list(who, namespace)

        verdicts = await asyncio.gather(*(check(ns) for ns in names[:MAX_NAMESPACES]))
        allowed = tuple(ns for ns, ok in zip(names, verdicts, strict=False) if ok)
        note = ""
        if not allowed:
            note = (
                f"{who.username} may list events in no namespace {where} (nor cluster-wide): "
                "ask for a Role with list on events"
            )
        elif len(names) > MAX_NAMESPACES:
            note = f"only the first {MAX_NAMESPACES} namespaces were checked: name a namespace to see another"
        return Access(False, allowed, note=note)

    async def _candidates(self) -> list[str]:
        source = self.archive_namespaces
        if source is None:
            raise RuntimeError("the gate has no source of namespaces")

        async def ask() -> list[str]:
            return sorted(await source())

        return await self._once(self._namespaces, "namespaces", ask)
