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
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from importlib import resources
from typing import Any, Protocol

from streams import logs
from streams.explorer import query
from streams.search import SearchFailed, SearchUnavailable
from streams.settings import ExplorerSettings

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


# The worker's own count view (/counts/reasons/), asked with these parameters.
CountsView = Callable[[Mapping[str, str]], Awaitable[dict[str, Any]]]


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
    ) -> None:
        self.config = config
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

    def refused(self, json_api: bool) -> Reply:
        # Basic only: a browser then shows its login prompt (the token works as the password there);
        # bearer clients send their header without being asked.
        challenge = 'Basic realm="k8s-event-streams explorer", charset="UTF-8"'
        reply = (
            self._error(401, "authentication required", state="unauthorized")
            if json_api
            else self._text(401, "authentication required")
        )
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

    async def api(self, what: str, params: Mapping[str, str]) -> Reply:
        if what == "top":
            return await self._top(params)
        handler = {"search": self._search, "histogram": self._histogram, "timeline": self._timeline}.get(what)
        if handler is None:
            return self._error(404, f"no API {what[:40]!r}; there are search, histogram, timeline, top")
        started = time.monotonic()
        try:
            body = await handler(self.search_client, params)
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

    async def _search(self, client: Searcher, params: Mapping[str, str]) -> dict[str, Any]:
        search, page = query.parse_search(params, self.clock())
        response = await self._ask(client, query.search_body(search, page, self.config.timeout))
        answer = query.search_answer(response, page)
        answer["range"] = {"from": search.range.start_ms, "to": search.range.end_ms}
        return answer

    async def _histogram(self, client: Searcher, params: Mapping[str, str]) -> dict[str, Any]:
        params = {k: v for k, v in params.items() if k not in ("size", "after")}
        search, _ = query.parse_search(params, self.clock())
        response = await self._ask(client, query.histogram_body(search, self.config.timeout))
        return asdict(query.histogram_answer(response, search))

    async def _timeline(self, client: Searcher, params: Mapping[str, str]) -> dict[str, Any]:
        timeline = query.parse_timeline(params, self.clock())
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

    async def _top(self, params: Mapping[str, str]) -> Reply:
        """Top reasons from the count tables, through the worker's own view (so the auth covers it)."""
        unknown = sorted(set(params) - {"window", "namespace", "type", "top"})
        window, top = params.get("window", "1h"), params.get("top", "10")
        if unknown or window not in ("1m", "1h") or not top.isdigit() or not 1 <= int(top) <= 50:
            return self._error(400, "top takes window=1m|1h, top=1..50, namespace and type", state="bad_request")
        if params.get("type", "Normal") not in query.TYPES:
            return self._error(400, "type: Normal or Warning", state="bad_request")
        asked = {k: v for k, v in params.items() if v}
        try:
            body = await asyncio.wait_for(self.counts({**asked, "window": window, "top": top}), self.config.timeout)
        except (OSError, TimeoutError, ValueError) as exc:
            logs.warning(log, "explorer_counts_failed", error=str(exc)[:200])
            return self._error(
                503, f"the count views did not answer: {str(exc)[:200] or type(exc).__name__}", "unreachable"
            )
        return self._json(
            200, {"window": window, "reasons": body.get("reasons", []), "partial": body.get("partial", [])}
        )

    # ------------------------------------------------------------ helpers

    def _json(self, status: int, body: Any) -> Reply:
        data = json.dumps(body, separators=(",", ":")).encode()
        return Reply(status, data, "application/json", {**SECURITY_HEADERS, "Cache-Control": "no-store"})

    def _error(self, status: int, message: str, state: str = "error") -> Reply:
        return self._json(status, {"error": message, "state": state})

    def _text(self, status: int, message: str) -> Reply:
        return Reply(status, message.encode(), "text/plain", {**SECURITY_HEADERS, "Cache-Control": "no-store"})
