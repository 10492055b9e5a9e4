"""The stages' tables: dedup's memory of delivered versions and the windowed occurrence counts.

Installed as ``streams.tables`` (see pyproject.toml): a top-level ``tables`` would shadow PyTables.
Each module's ``declare(app, settings)`` is called by :func:`streams.pipeline.create_app`.
"""
