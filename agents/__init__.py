"""The worker's agents: ingest (watch -> raw topic), dedup (raw -> clean), counts, sink (clean -> search).

Imported as ``streams.agents`` (see pyproject.toml for why not as a top-level ``agents``).
"""
