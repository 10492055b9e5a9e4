"""The explorer's HTTP answers, free of any web framework: request facts in, :class:`Reply` out.

``streams.explorer.web`` adapts these to Faust's web server; tests call them directly. Every
answer carries the security headers; every failure is one line of JSON ``{"error": ...}``.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import hmac
import json
import logging
import time
from collections.abc import Awaitable, Callable, Iterable, Mapping
from dataclasses import asdict, dataclass, field, replace
from datetime import UTC, datetime
from importlib import resources
from typing import Any, Protocol

from streams.config.settings import ExplorerSettings
from streams.core import logs
from streams.counts import views
from streams.counts.windows import split_reason_key
from streams.explorer import query
from streams.explorer.access import EVERYTHING, Access, Gate
from streams.kube.api import ApiError, Disconnected, Identity, IdleTimeout
from streams.search.client import SearchFailed, SearchUnavailable

log = logging.getLogger("streams.explorer")

# Scripts, styles and requests from this origin only; nothing inline, no frames, no plugins.
CSP = (
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; "
    "font-src 'self'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'"
)
SECURITY_HEADERS = {
    "Content-Security-Policy": CSP,
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "X-Frame-Options": "DENY",
    "Cross-Origin-Resource-Policy": "same-origin",
}
ASSETS = {
    "explorer.js": "text/javascript",
    "explorer.css": "text/css",
    "vendor/uplot/uPlot.iife.min.js": "text/javascript",
    "vendor/uplot/uPlot.min.css": "text/css",
}


class CountsView(Protocol):
    """The worker's own count view (/counts/reasons/), asked with these parameters, carrying the caller's
    Kubernetes ``token`` when there is one (the view checks it itself)."""

    def __call__(self, params: Mapping[str, str], token: str | None = None) -> Awaitable[dict[str, Any]]: ...


class Searcher(Protocol):
    async def search(self, index: str, body: Mapping[str, Any]) -> dict[str, Any]: ...


@dataclass(frozen=True)
class Reply:
    status: int
    body: bytes
    content_type: str
    headers: dict[str, str] = field(default_factory=dict)


def _load(name: str) -> bytes:
    return resources.files("streams.explorer").joinpath("static", name).read_bytes()


class Explorer:
    """The page, its assets and its JSON API over one search client and the worker's count view.

    Both always exist in a worker: K8SEV_ES_URL cannot be empty (a start-up error), and every worker
    serves /counts/reasons/.
    """

    def __init__(
        self,
        config: ExplorerSettings,
        search: Searcher,
        index_pattern: str,
        counts: CountsView,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
        gate: Gate | None = None,
    ) -> None:
        if config.mode == "kubernetes" and gate is None:
            raise ValueError("K8SEV_EXPLORER_AUTH=kubernetes needs the reviews' gate")
        self.config = config
        self.gate = gate
        if gate is not None and gate.archive_namespaces is None:
            gate.archive_namespaces = self.archive_namespaces
        self.counts = counts
        self.search_client = search
        self.index_pattern = index_pattern
        self.clock = clock
        # Read once: a handful of small files, and a broken wheel fails at start-up, not on a click.
        self.page_html = _load("index.html")
        self.assets = {name: _load(name) for name in ASSETS}

    # ------------------------------------------------------------ auth

    def authorized(self, authorization: str | None) -> bool:
        """``Authorization`` accepted: no auth configured, the bearer token, or basic credentials.

        Basic auth with the token as password (any user name) is accepted too, so a browser's own
        login prompt can carry the token.
        """
        if not self.config.protected:
            return True
        if not authorization:
            return False
        scheme, _, value = authorization.strip().partition(" ")
        value = value.strip()
        if scheme.lower() == "bearer" and self.config.token:
            return hmac.compare_digest(value.encode(), self.config.token.encode())
        if scheme.lower() != "basic":
            return False
        try:
            user, sep, password = base64.b64decode(value, validate=True).decode().partition(":")
        except (binascii.Error, UnicodeDecodeError):
            return False
        if not sep:
            return False
        if self.config.username and hmac.compare_digest(
            f"{user}:{password}".encode(), f"{self.config.username}:{self.config.password}".encode()
        ):
            return True
        return bool(self.config.token) and hmac.compare_digest(password.encode(), self.config.token.encode())

    async def admit(
        self, authorization: str | None, json_api: bool, eventlog_token: str | None = None
    ) -> Reply | Identity | None:
        """The caller: None (no per-person limits), the person a TokenReview named, or the refusal.

        ``eventlog_token`` is the ``X-Eventlog-Token`` header: ``kubectl eventlog``'s bearer token
        again, since the API server's service proxy drops ``Authorization`` once it has authenticated
        the caller. Read only in ``kubernetes`` mode, where it is one more way to present a token that
        a TokenReview then checks; a shared token or basic credentials never come that way.
        """
        if self.config.mode != "kubernetes":
            return None if self.authorized(authorization) else self.refused(json_api)
        assert self.gate is not None
        token = bearer_or_password(authorization) or (eventlog_token or "").strip()
        if not token:
            return self.refused(json_api)
        try:
            who = await self.gate.identify(token)
        except (ApiError, Disconnected, IdleTimeout, OSError) as exc:
            logs.warning(log, "explorer_review_failed", review="token", error=str(exc)[:200])
            return self._error(503, "the Kubernetes API server did not answer the token review", "unreachable")
        if who is None:
            logs.info(log, "explorer_token_refused")
            return self.refused(json_api, "the Kubernetes API server does not accept this token")
        return who

    async def count_access(
        self,
        authorization: str | None,
        eventlog_token: str | None,
        family: str,
        asked: str | None,
        present: Iterable[str],
    ) -> views.Admission:
        """The count views' admission in ``kubernetes`` mode, as the JSON API's: who asks and what of a
        count table (``family`` reason or kind) they may read, or the refusal.

        ``asked``: the namespace the request names; else the namespaces ``present`` in this worker's
        share are reviewed (the same gate and cache as the JSON API). The kind table's keys name no
        namespace, so only cluster-wide rights read it.
        """
        who = await self.admit(authorization, True, eventlog_token)
        if isinstance(who, Reply):
            return views.Admission(refusal=_refusal(who))
        assert who is not None, "kubernetes mode admits people only"
        assert self.gate is not None
        token = bearer_or_password(authorization) or (eventlog_token or "").strip()
        try:
            access = await self.gate.access(who, [asked] if asked else [], candidates=present)
        except (ApiError, Disconnected, IdleTimeout, OSError) as exc:
            logs.warning(log, "explorer_review_failed", review="access", error=str(exc)[:200])
            error = self._error(503, "the Kubernetes API server did not answer the access review", "unreachable")
            return views.Admission(refusal=_refusal(error))
        if access.forbidden is not None:
            logs.info(log, "explorer_forbidden", user=who.username, namespace=access.forbidden)
            why = f"{who.username} may not list events in namespace {access.forbidden!r}"
            error = self._error(403, why, "forbidden")
            return views.Admission(refusal=_refusal(error))
        if access.everything:
            return views.Admission(token=token)
        if family != "reason":
            logs.info(log, "explorer_forbidden", user=who.username, namespace="")
            error = self._error(
                403,
                f"{who.username} may not list events cluster-wide, which the counts by kind need (their keys"
                " name no namespace); /counts/reasons/ counts per namespace",
                "forbidden",
            )
            return views.Admission(refusal=_refusal(error))
        return views.Admission(frozenset(access.namespaces), token, access.note)

    def refused(self, json_api: bool, why: str = "authentication required") -> Reply:
        # Basic only: a browser then shows its login prompt (the token works as the password there);
        # bearer clients send their header without being asked.
        challenge = 'Basic realm="k8s-event-streams explorer", charset="UTF-8"'
        if self.config.mode == "kubernetes":
            why += (
                "; send a Kubernetes token (Authorization: Bearer <token>), or in the browser's prompt any"
                " user name and the token as password: `kubectl create token <serviceaccount>` makes one"
            )
        reply = self._error(401, why, state="unauthorized") if json_api else self._text(401, why)
        return Reply(reply.status, reply.body, reply.content_type, {**reply.headers, "WWW-Authenticate": challenge})

    # ------------------------------------------------------------ page and assets

    def page(self) -> Reply:
        return Reply(200, self.page_html, "text/html", {**SECURITY_HEADERS, "Cache-Control": "no-cache"})

    def asset(self, name: str) -> Reply:
        body = self.assets.get(name)
        if body is None:
            return self._text(404, "no such asset")
        return Reply(200, body, ASSETS[name], {**SECURITY_HEADERS, "Cache-Control": "public, max-age=300"})

    # ------------------------------------------------------------ JSON API

    async def api(
        self, what: str, params: Mapping[str, str], who: Identity | None = None, token: str | None = None
    ) -> Reply:
        """One JSON API answer; ``token`` is the caller's Kubernetes token, handed on to the count view."""
        if what not in ("search", "histogram", "timeline", "top"):
            return self._error(404, f"no API {what[:40]!r}; there are search, histogram, timeline, top")
        access = EVERYTHING
        if who is not None:
            assert self.gate is not None
            asked = [ns.strip() for ns in params.get("namespace", "").split(",") if ns.strip()]
            try:
                access = await self.gate.access(who, asked[:50])
            except (ApiError, Disconnected, IdleTimeout, OSError) as exc:
                logs.warning(log, "explorer_review_failed", review="access", error=str(exc)[:200])
                return self._error(503, "the Kubernetes API server did not answer the access review", "unreachable")
            except (SearchUnavailable, SearchFailed, TimeoutError) as exc:
                return self._error(503, f"search engine unreachable: {str(exc)[:200]}", state="unreachable")
            if access.forbidden is not None:
                logs.info(log, "explorer_forbidden", user=who.username, namespace=access.forbidden)
                return self._error(
                    403, f"{who.username} may not list events in namespace {access.forbidden!r}", "forbidden"
                )
            if not access.everything and not access.namespaces:
                return self._json(200, self._nothing(what, access.note))
        if what == "top":
            return await self._top(params, access, token)
        handler = {"search": self._search, "histogram": self._histogram, "timeline": self._timeline}[what]
        started = time.monotonic()
        try:
            body = await handler(self.search_client, params, access.within)
            if access.note:
                body["notice"] = access.note
        except query.QueryError as exc:
            return self._error(400, str(exc), state="bad_request")
        except (SearchUnavailable, TimeoutError) as exc:
            detail = str(exc) or f"no answer within {self.config.timeout:g}s"
            logs.warning(log, "explorer_search_unreachable", api=what, error=detail[:200])
            return self._error(503, f"search engine unreachable: {detail}", state="unreachable")
        except SearchFailed as exc:
            logs.warning(log, "explorer_search_failed", api=what, status=exc.status, error=str(exc)[:200])
            return self._error(502, str(exc), state="failed")
        logs.debug(log, "explorer_api", api=what, ms=round((time.monotonic() - started) * 1000))
        return self._json(200, body)

    async def _ask(self, client: Searcher, body: Mapping[str, Any]) -> dict[str, Any]:
        try:
            return await asyncio.wait_for(client.search(self.index_pattern, body), timeout=self.config.timeout)
        except TimeoutError:
            raise SearchUnavailable(f"no answer within {self.config.timeout:g}s") from None

    def _nothing(self, what: str, note: str) -> dict[str, Any]:
        """The answer for a person who may read nothing: empty, with the reason for the page to show."""
        empties: dict[str, dict[str, Any]] = {
            "search": {"total": 0, "exact": True, "timed_out": False, "took_ms": 0, "rows": [], "next": None},
            "histogram": {
                "interval": "",
                "seconds": 0,
                "start_ms": 0,
                "end_ms": 0,
                "times": [],
                "normal": [],
                "warning": [],
            },
            "timeline": {"rows": [], "owners": [], "total": 0, "truncated": False},
            "top": {"reasons": [], "partial": []},
        }
        empty = empties[what]
        return {**empty, "notice": note}

    async def archive_namespaces(self) -> list[str]:
        """Every namespace with documents: the candidates a person's access is checked against."""
        response = await self._ask(self.search_client, query.namespaces_body(10_000))
        return query.namespaces_answer(response)

    async def _search(
        self, client: Searcher, params: Mapping[str, str], within: tuple[str, ...] | None
    ) -> dict[str, Any]:
        # source=1: each row also carries its whole document, for `kubectl eventlog -o json|yaml`.
        sources = params.get("source", "") == "1"
        if params.get("source", "1") != "1":
            raise query.QueryError("source: 1 or absent")
        params = {k: v for k, v in params.items() if k != "source"}
        search, page = query.parse_search(params, self.clock())
        search = replace(search, within=within)
        response = await self._ask(client, query.search_body(search, page, self.config.timeout))
        answer = query.search_answer(response, page, sources=sources)
        answer["range"] = {"from": search.range.start_ms, "to": search.range.end_ms}
        return answer

    async def _histogram(
        self, client: Searcher, params: Mapping[str, str], within: tuple[str, ...] | None
    ) -> dict[str, Any]:
        params = {k: v for k, v in params.items() if k not in ("size", "after")}
        search, _ = query.parse_search(params, self.clock())
        search = replace(search, within=within)
        response = await self._ask(client, query.histogram_body(search, self.config.timeout))
        return asdict(query.histogram_answer(response, search))

    async def _timeline(
        self, client: Searcher, params: Mapping[str, str], within: tuple[str, ...] | None
    ) -> dict[str, Any]:
        timeline = replace(query.parse_timeline(params, self.clock()), within=within)
        if timeline.owners and timeline.target.kind == "Pod":
            # The pod's recorded owner chain, when an enriched document has it, replaces the name guess.
            recorded = await self._ask(client, query.recorded_owners_body(timeline))
            owners = query.recorded_owners(timeline.target.name, recorded)
            if owners is not None:
                timeline = replace(timeline, owners=owners)
        response = await self._ask(client, query.timeline_body(timeline))
        rows = query.timeline_rows(response)
        total = ((response.get("hits") or {}).get("total") or {}).get("value", len(rows))
        return {
            "object": asdict(timeline.target),
            "owners": [{"kind": list(o.kind), "name": o.name} for o in timeline.owners],
            "rows": rows,
            "total": int(total),
            "truncated": int(total) > len(rows),
        }

    async def _top(self, params: Mapping[str, str], access: Access = EVERYTHING, token: str | None = None) -> Reply:
        """Top reasons from the count tables, through the worker's own view (so the auth covers it).

        The view is asked with the caller's ``token`` and, in ``kubernetes`` mode, keeps its counts to
        the caller's namespaces itself. A person limited to some namespaces gets the raw counts, kept
        here to those this request's access allows as well, before anything leaves the worker.
        """
        unknown = sorted(set(params) - {"window", "namespace", "type", "top"})
        window, top = params.get("window", "1h"), params.get("top", "10")
        if unknown or window not in ("1m", "1h") or not top.isdigit() or not 1 <= int(top) <= 50:
            return self._error(400, "top takes window=1m|1h, top=1..50, namespace and type", state="bad_request")
        if params.get("type", "Normal") not in query.TYPES:
            return self._error(400, "type: Normal or Warning", state="bad_request")
        asked = {k: v for k, v in params.items() if v}
        if access.within is not None:
            asked["raw"] = "1"
        try:
            body = await asyncio.wait_for(
                self.counts({**asked, "window": window, "top": top}, token), self.config.timeout
            )
        except (OSError, TimeoutError, ValueError) as exc:
            logs.warning(log, "explorer_counts_failed", error=str(exc)[:200])
            return self._error(
                503, f"the count views did not answer: {str(exc)[:200] or type(exc).__name__}", "unreachable"
            )
        if access.within is not None:
            body["reasons"] = top_reasons(body.get("counts") or {}, set(access.within), int(top))
        answer = {"window": window, "reasons": body.get("reasons", []), "partial": body.get("partial", [])}
        if access.note:
            answer["notice"] = access.note
        return self._json(200, answer)

    # ------------------------------------------------------------ helpers

    def _json(self, status: int, body: Any) -> Reply:
        data = json.dumps(body, separators=(",", ":")).encode()
        return Reply(status, data, "application/json", {**SECURITY_HEADERS, "Cache-Control": "no-store"})

    def _error(self, status: int, message: str, state: str = "error") -> Reply:
        return self._json(status, {"error": message, "state": state})

    def _text(self, status: int, message: str) -> Reply:
        return Reply(status, message.encode(), "text/plain", {**SECURITY_HEADERS, "Cache-Control": "no-store"})


def _refusal(reply: Reply) -> views.Refusal:
    return views.Refusal(reply.status, reply.body, reply.content_type, reply.headers)


def bearer_or_password(authorization: str | None) -> str:
    """The token of ``Bearer <token>``, or the password of basic credentials (a browser's prompt)."""
    scheme, _, value = (authorization or "").strip().partition(" ")
    value = value.strip()
    if scheme.lower() == "bearer":
        return value
    if scheme.lower() == "basic":
        try:
            _, sep, password = base64.b64decode(value, validate=True).decode().partition(":")
        except (binascii.Error, UnicodeDecodeError):
            return ""
        return password if sep else ""
    return ""


def top_reasons(counts: Mapping[str, int], namespaces: set[str], top: int) -> list[dict[str, Any]]:
    """The count view's ``{namespace/type/reason: n}`` kept to ``namespaces``, as its top reasons."""
    totals: dict[tuple[str, str], int] = {}
    for key, value in counts.items():
        namespace, event_type, reason = split_reason_key(key)
        if namespace in namespaces:
            totals[(event_type, reason)] = totals.get((event_type, reason), 0) + int(value)
    ranked = sorted(totals.items(), key=lambda kv: (-kv[1], kv[0]))[:top]
    return [{"type": t, "reason": r, "count": c} for (t, r), c in ranked]
