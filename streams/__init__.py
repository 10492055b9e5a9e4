"""Kubernetes events, kept: API server -> Kafka -> Elasticsearch, as a Faust application.

``faust -A streams worker`` finds the app here. It is built on first access, not at import, so
the pure modules (``streams.events``, ``streams.settings``, ...) import without a configured
environment.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import faust


def __getattr__(name: str) -> Any:
    if name == "app":
        from streams.application import app

        return app
    raise AttributeError(f"module 'streams' has no attribute {name!r}")


app: faust.App
