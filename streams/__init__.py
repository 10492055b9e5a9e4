"""Kubernetes events, kept: API server -> Kafka -> Elasticsearch, as a Faust application.

``faust -A streams worker`` finds the app here as ``streams.app``. It is built on first access,
from the environment as it is then (:func:`streams.pipeline.load_settings`), never at import, so every
module of the package imports without a configured environment. Tests and tools call
:func:`streams.pipeline.create_app` with their own settings instead.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from streams.pipeline import App

_built: App | None = None


def __getattr__(name: str) -> Any:
    if name == "app":
        global _built
        if _built is None:
            from streams import pipeline
            from streams.core import loop

            loop.choose()  # before Faust's worker makes its event loop
            _built = pipeline.create_app(pipeline.load_settings())
        return _built
    raise AttributeError(f"module 'streams' has no attribute {name!r}")
