"""The count stage's pure part: the windows and the keys of the occurrence tables.

``by_reason`` is keyed ``<namespace>/<type>/<reason>`` and filled from a stream grouped by
namespace, so every key of one namespace lives in the same partition: a view for one namespace
is answered by the one worker that owns it. ``by_kind`` is keyed ``<kind>/<reason>`` and grouped
by kind. Namespaces, types and kinds cannot contain ``/``; a reason might, so it comes last.
"""

from __future__ import annotations

from datetime import timedelta

MINUTE = timedelta(minutes=1)
HOUR = timedelta(hours=1)

#: How long closed windows stay queryable.
MINUTE_EXPIRES = timedelta(hours=2)
HOUR_EXPIRES = timedelta(days=2)

#: label -> (window size, how long a closed window is kept)
WINDOWS = {"1m": (MINUTE, MINUTE_EXPIRES), "1h": (HOUR, HOUR_EXPIRES)}


def reason_key(namespace: str, event_type: str, reason: str) -> str:
    return f"{namespace}/{event_type}/{reason}"


def split_reason_key(key: str) -> tuple[str, str, str]:
    namespace, event_type, reason = key.split("/", 2)
    return namespace, event_type, reason


def kind_key(kind: str, reason: str) -> str:
    return f"{kind}/{reason}"


def split_kind_key(key: str) -> tuple[str, str]:
    kind, reason = key.split("/", 1)
    return kind, reason
