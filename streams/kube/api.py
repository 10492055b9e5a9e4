"""The few Kubernetes calls ingest makes, as a Protocol: LIST a page, open a WATCH, read/create/replace a Lease.

Enrichment (:mod:`streams.ingest.metadata`) adds the same two calls for any resource's metadata only.

The watcher and the elector depend on this, never on the ``kubernetes`` client, so they run in
unit tests against a scripted fake. :mod:`streams.kube.client` is the real implementation (and the
only module that imports ``kubernetes``). Every call is blocking and bounded by a request timeout;
errors are the three exceptions below, whatever the transport said.

The explorer's reviews (``streams.kube.client.KubernetesReviews``) answer with an :class:`Identity`,
defined here so that the client needs nothing of the explorer (no import cycle between the two).
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any, Protocol

HTTP_FORBIDDEN = 403
HTTP_NOT_FOUND = 404
HTTP_CONFLICT = 409
HTTP_GONE = 410
HTTP_UNPROCESSABLE = 422


class ApiError(Exception):
    """The API server answered with an error status (or a watch ERROR notification)."""

    def __init__(self, status: int, reason: str = "", message: str = "") -> None:
        self.status = status
        self.reason = reason
        self.message = message
        super().__init__(f"{status} {reason}: {message}".strip(": "))


class IdleTimeout(Exception):
    """Nothing arrived for the read timeout: the connection is presumed dead."""


class Disconnected(Exception):
    """The connection failed or was closed (also: closed by :meth:`Response.close` to stop a read)."""


@dataclass(frozen=True)
class Identity:
    """The person a TokenReview found: what a SubjectAccessReview must repeat about them."""

    username: str
    uid: str = ""
    groups: tuple[str, ...] = ()
    extra: tuple[tuple[str, tuple[str, ...]], ...] = ()


class Response(Protocol):
    """One request in flight. ``close`` may be called from another thread to end a blocking read."""

    def json(self) -> dict[str, Any]:
        """The whole body as one JSON object (a LIST page)."""
        ...

    def notifications(self) -> Iterator[dict[str, Any]]:
        """The body as watch notifications (``{"type": ..., "object": ...}``), one per line, as they arrive."""
        ...

    def close(self) -> None: ...


class KubeApi(Protocol):
    def list_events(self, namespace: str | None, *, limit: int, continue_token: str | None) -> Response:
        """Open one page of a LIST of core/v1 Events (``namespace`` None: all namespaces)."""
        ...

    def watch_events(
        self, namespace: str | None, *, resource_version: str, timeout_seconds: int, idle_timeout: float
    ) -> Response:
        """Open a WATCH from ``resource_version`` with bookmarks; ``idle_timeout`` bounds each read."""
        ...

    def list_metadata(self, path: str, *, limit: int, continue_token: str | None) -> Response:
        """Open one page of a LIST of ``path`` (a collection, e.g. ``/apis/apps/v1/replicasets``) as a
        ``PartialObjectMetadataList``: each item's metadata only, never its spec, status or data."""
        ...

    def watch_metadata(
        self, path: str, *, resource_version: str, timeout_seconds: int, idle_timeout: float
    ) -> Response:
        """Open a WATCH of ``path`` from ``resource_version`` whose objects are ``PartialObjectMetadata``."""
        ...

    def read_lease(self, namespace: str, name: str) -> dict[str, Any] | None:
        """The Lease as JSON, or None if there is none."""
        ...

    def create_lease(self, namespace: str, body: dict[str, Any]) -> bool:
        """Create the Lease; False if it already exists (someone else was first)."""
        ...

    def replace_lease(self, namespace: str, name: str, body: dict[str, Any]) -> bool:
        """Replace the Lease (``body`` carries the resourceVersion read); False on a conflict."""
        ...
