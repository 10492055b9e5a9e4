"""The worker's tables: dedup's memory of delivered versions and the windowed occurrence counts.

Imported as ``streams.tables`` (see pyproject.toml for why not as a top-level ``tables``).
"""
