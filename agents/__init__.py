"""The stages' agents: ingest (watch -> raw topic), dedup (raw -> clean), counts, sink (clean -> search), retention.

Installed as ``streams.agents`` (see pyproject.toml): a top-level ``agents`` would shadow other
packages of that name. Each module's ``install(...)`` is called by :func:`streams.pipeline.create_app`.
"""
