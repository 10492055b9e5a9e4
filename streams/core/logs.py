"""Structured log lines: ``event=<stable key> field=value ...`` (logfmt), one line per fact.

Dashboards and alerts match on ``event=``; its values are a stable interface, so new facts get new
keys rather than reworded messages.
"""

from __future__ import annotations

import logging
from typing import Any


def _value(value: Any) -> str:
    text = str(value)
    if text == "" or any(c in text for c in ' "=\n\t'):
        escaped = text.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")
        return f'"{escaped}"'
    return text


def fmt(event: str, **fields: Any) -> str:
    return " ".join([f"event={event}", *(f"{k}={_value(v)}" for k, v in fields.items() if v is not None)])


def info(logger: logging.Logger, event: str, **fields: Any) -> None:
    if logger.isEnabledFor(logging.INFO):
        logger.info(fmt(event, **fields))


def warning(logger: logging.Logger, event: str, **fields: Any) -> None:
    logger.warning(fmt(event, **fields))


def error(logger: logging.Logger, event: str, exc_info: bool = False, **fields: Any) -> None:
    logger.error(fmt(event, **fields), exc_info=exc_info)


def debug(logger: logging.Logger, event: str, **fields: Any) -> None:
    if logger.isEnabledFor(logging.DEBUG):
        logger.debug(fmt(event, **fields))
