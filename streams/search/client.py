"""One interface over Elasticsearch and OpenSearch, each through its own official async client.

The Elasticsearch client refuses to talk to OpenSearch (its product check), so the engine is a
setting. Everything the worker does with a search engine goes through :class:`SearchClient`.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Mapping, Sequence
from typing import Any

from streams.config.settings import Settings


class SearchClient:
    """The calls the worker makes, identical for both engines."""

    def __init__(self, settings: Settings) -> None:
        self.engine = settings.search.engine
        self._client = _new_client(settings)

    @property
    def raw(self) -> Any:
        """The engine's own client, for what this interface does not cover (tests, tools)."""
        return self._client

    async def close(self) -> None:
        await self._client.close()

    async def healthy(self) -> bool:
        # GET / is not served by every build (a node assembled without the rest-root module);
        # cluster health is, on both engines.
        # No `timeout=`: opensearch-py takes it as its own socket timeout, not the API's.
        health = await self._client.cluster.health()
        return health.get("status") in ("green", "yellow")

    async def put_index_template(self, name: str, body: Mapping[str, Any]) -> None:
        await self._client.indices.put_index_template(name=name, body=dict(body))

    async def bulk(self, operations: Sequence[Mapping[str, Any]] | bytes, refresh: bool = False) -> dict[str, Any]:
        """A bulk request: actions and documents, or a body already serialized as NDJSON lines."""
        kwargs: dict[str, Any] = {"body": operations if isinstance(operations, bytes) else list(operations)}
        if refresh:
            kwargs["refresh"] = "true"
        response = await self._client.bulk(**kwargs)
        return dict(response.body if hasattr(response, "body") else response)

    async def indices(self, pattern: str) -> list[str]:
        response = await self._client.indices.get(index=pattern, expand_wildcards="open,closed", allow_no_indices=True)
        body = response.body if hasattr(response, "body") else response
        return sorted(body)

    async def delete_index(self, name: str) -> None:
        await self._client.indices.delete(index=name)

    async def search(self, index: str, body: Mapping[str, Any]) -> dict[str, Any]:
        """One ``_search``; raises :class:`SearchUnavailable` or :class:`SearchFailed`, never a client's own error."""
        return await self._call(self._client.search, index=index, body=dict(body))

    async def _call(self, method: Any, **kwargs: Any) -> dict[str, Any]:
        # Wildcard patterns with no index yet answer empty rather than 404.
        kwargs.update(ignore_unavailable=True, allow_no_indices=True)
        unreachable, api_errors = _client_errors()
        try:
            response = await method(**kwargs)
        except unreachable as exc:
            raise SearchUnavailable(f"{self.engine} unreachable: {_first_line(exc)}") from exc
        except api_errors as exc:
            status = getattr(exc, "status_code", None)
            raise SearchFailed(int(status) if isinstance(status, int) else 0, _first_line(exc)) from exc
        return dict(response.body if hasattr(response, "body") else response)


class SearchUnavailable(ConnectionError):
    """The engine could not be reached (connection refused, TLS, timeout)."""


class SearchFailed(RuntimeError):
    """The engine answered with an error (a bad query, no permission, overloaded)."""

    def __init__(self, status: int, detail: str) -> None:
        self.status = status
        super().__init__(f"search engine answered {status or 'an error'}: {detail}")


def _first_line(exc: BaseException) -> str:
    return (str(exc).splitlines() or [type(exc).__name__])[0][:300]


@functools.cache
def _client_errors() -> tuple[tuple[type[BaseException], ...], tuple[type[BaseException], ...]]:
    import elastic_transport
    import elasticsearch
    import opensearchpy

    unreachable = (
        elastic_transport.ConnectionError,
        elastic_transport.ConnectionTimeout,
        opensearchpy.ConnectionError,
        TimeoutError,
    )
    api = (elasticsearch.ApiError, elastic_transport.TransportError, opensearchpy.TransportError)
    return unreachable, api


def _new_client(settings: Settings) -> Any:
    common: dict[str, Any] = {"request_timeout": 30}
    if settings.search.ca_certs is not None:
        common["ca_certs"] = str(settings.search.ca_certs)
    if settings.search.client_cert is not None and settings.search.client_key is not None:
        common["client_cert"] = str(settings.search.client_cert)
        common["client_key"] = str(settings.search.client_key)
    auth: dict[str, Any] = {}
    if settings.search.username:
        auth["http_auth" if settings.search.engine == "opensearch" else "basic_auth"] = (
            settings.search.username,
            settings.search.password,
        )
    if settings.search.engine == "opensearch":
        from opensearchpy import AsyncOpenSearch

        if settings.search.api_key:
            common["headers"] = {"Authorization": f"ApiKey {settings.search.api_key}"}
        return AsyncOpenSearch(
            hosts=list(settings.search.urls), timeout=common.pop("request_timeout"), max_retries=0, **common, **auth
        )
    from elasticsearch import AsyncElasticsearch

    if settings.search.api_key:
        auth["api_key"] = settings.search.api_key
    # Retries are the sink's job (it backs off without bound and never acks a failed batch).
    return AsyncElasticsearch(hosts=list(settings.search.urls), max_retries=0, **common, **auth)


_DAILY = re.compile(r"^(?P<prefix>.+)-(?P<date>\d{4}\.\d{2}\.\d{2})$")


def index_date(name: str, prefix: str) -> str | None:
    """``YYYY.MM.dd`` of a daily index of ``prefix``, or None for any other index."""
    match = _DAILY.match(name)
    if not match or match.group("prefix") != prefix:
        return None
    return match.group("date")
