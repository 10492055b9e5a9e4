"""The explorer on Faust's web server: ``install(app, settings)`` adds ``/ui/`` and ``/ui/api/*``.

Assets are served by a view of ours rather than ``add_static``, so the auth setting covers them
and every answer carries the Content-Security-Policy.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping
from typing import TYPE_CHECKING, Any

import aiohttp
from faust import web

from streams.config.settings import Settings
from streams.core import logs
from streams.counts import views
from streams.explorer.handlers import Explorer, Reply, bearer_or_password, log
from streams.explorer.proxy import TOKEN_HEADER
from streams.kube.api import Identity

if TYPE_CHECKING:
    from streams.search.client import SearchClient


def token_of(request: web.Request) -> str | None:
    """The Kubernetes token a request presents (``Authorization`` or ``X-Eventlog-Token``), to hand on."""
    headers = request.headers
    return bearer_or_password(headers.get("Authorization")) or (headers.get(TOKEN_HEADER) or "").strip() or None


def count_guard(core: Explorer | None) -> views.Guard | None:
    """The count views' gate: the explorer's, in ``kubernetes`` mode; None (the views stay open, as the
    NetworkPolicy guards them) in every other mode."""
    if core is None or core.config.mode != "kubernetes":
        return None
    explorer = core

    async def guard(
        headers: Mapping[str, str], family: str, asked: str | None, present: Collection[str]
    ) -> views.Admission:
        authorization, eventlog_token = headers.get("Authorization"), headers.get(TOKEN_HEADER)
        return await explorer.count_access(authorization, eventlog_token, family, asked, present)

    return guard


def install(app: Any, settings: Settings, search: SearchClient) -> Explorer | None:
    """Register the explorer's views on ``app`` (a faust.App), searching through the worker's ``search``
    client; None when K8SEV_EXPLORER=false, unless the auth is ``kubernetes``: then the count views
    still admit through the returned explorer (no page is served).

    The search settings say where to search (K8SEV_ES_URL, never empty); ``settings.explorer`` who
    may read it and how long a search may take.
    """
    explorer = settings.explorer
    if not explorer.enabled and explorer.mode != "kubernetes":
        return None
    prefix = settings.search.index_prefix
    canonical = str(app.conf.canonical_url).rstrip("/")

    async def counts(params: Mapping[str, str], token: str | None = None) -> dict[str, Any]:
        # Over HTTP to ourselves: the view already merges every worker's share of the tables. The
        # caller's token goes along: the view admits and filters by it as for anyone else.
        timeout = aiohttp.ClientTimeout(total=explorer.timeout)
        url = f"{canonical}/counts/reasons/"
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        try:
            async with (
                aiohttp.ClientSession(timeout=timeout) as session,
                session.get(url, params=dict(params), headers=headers) as resp,
            ):
                if resp.status != 200:
                    raise ValueError(f"/counts/reasons/ answered {resp.status}")
                return dict(await resp.json())
        except aiohttp.ClientError as exc:
            raise ConnectionError(str(exc) or type(exc).__name__) from exc

    gate = None
    if explorer.mode == "kubernetes":
        from streams.explorer.access import Gate
        from streams.kube.client import KubernetesReviews

        # The explorer gives the gate its namespaces: those the archive has documents in.
        reviewer = KubernetesReviews.from_kubeconfig(settings.kube.kubeconfig)
        gate = Gate(reviewer, ttl=explorer.review_ttl, size=explorer.review_cache)
    core = Explorer(explorer, search, f"{prefix}-*", counts, gate=gate)
    if not explorer.enabled:
        logs.info(log, "explorer_installed", path="", protected=True, auth=explorer.mode)
        return core

    def respond(view: web.View, reply: Reply) -> web.Response:
        return view.bytes(reply.body, content_type=reply.content_type, status=reply.status, headers=reply.headers)

    async def admitted(request: web.Request, json_api: bool) -> Reply | Identity | None:
        headers = request.headers
        return await core.admit(headers.get("Authorization"), json_api, headers.get(TOKEN_HEADER))

    async def guarded(request: web.Request, json_api: bool) -> Reply | None:
        who = await admitted(request, json_api)
        return who if isinstance(who, Reply) else None

    @app.page("/ui")
    async def explorer_root(self: web.View, request: web.Request) -> web.Response:
        return self.bytes(b"", status=308, headers={"Location": "/ui/"})

    @app.page("/ui/")
    async def explorer_page(self: web.View, request: web.Request) -> web.Response:
        """The explorer page."""
        return respond(self, await guarded(request, False) or core.page())

    @app.page("/ui/static/{name:.+}")
    async def explorer_asset(self: web.View, request: web.Request, name: str) -> web.Response:
        return respond(self, await guarded(request, False) or core.asset(name))

    @app.page("/ui/api/{what}")
    async def explorer_api(self: web.View, request: web.Request, what: str) -> web.Response:
        """JSON: search, histogram, timeline."""
        who = await admitted(request, True)
        if isinstance(who, Reply):
            return respond(self, who)
        token = token_of(request) if who is not None else None
        return respond(self, await core.api(what, dict(request.query), who, token))

    logs.info(log, "explorer_installed", path="/ui/", protected=explorer.protected, auth=explorer.mode)
    return core
