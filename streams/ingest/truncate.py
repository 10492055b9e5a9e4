"""Oversized Events: cut the biggest strings until the raw record fits the producer's limit.

The API server accepts Events up to etcd's request limit (about 1.5 MiB), Kafka refuses records
over its ``max.message.bytes`` (1 MiB by default). Refusing the record would stop ingestion for
good (the checkpoint cannot move past it), so the Event is kept and cut instead: its identity and
metadata stay, the message is cut first, then the largest other strings (annotations, anything
else), until it fits. The cut Event gets one top-level field, so a search finds it::

    "truncated": {"originalBytes": 1468023, "sha256": "<of the original raw value>",
                  "fields": ["message", "metadata.annotations.big"]}

and every cut string ends in :data:`SUFFIX`. Sizes are measured with every non-ASCII character
escaped (``\\uXXXX``): an upper bound of any JSON encoding of the document, so the clean-topic
record built from it fits too (within :data:`HEADROOM`).
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from typing import Any

from streams.core.events import encode_raw, strip_managed_fields

#: Room left under the producer's limit for the record's key, headers, batch overhead, and the
#: clean topic's envelope around the Event.
HEADROOM = 64 * 1024
SUFFIX = "…[truncated]"
#: Strings this short (encoded bytes) are never cut: cutting them gains little and loses meaning.
MIN_CUT = 256
#: Kept whole whatever their size: the Event's identity and what every view groups by.
PROTECTED: frozenset[tuple[str, ...]] = frozenset(
    {
        ("apiVersion",),
        ("kind",),
        ("metadata", "uid"),
        ("metadata", "resourceVersion"),
        ("metadata", "name"),
        ("metadata", "namespace"),
        ("metadata", "creationTimestamp"),
        ("reason",),
        ("type",),
        ("firstTimestamp",),
        ("lastTimestamp",),
        ("eventTime",),
        ("series", "lastObservedTime"),
    }
)
#: A message longer than this is cut before anything else; a shorter one (what an operator reads)
#: only when it is the longest string left.
MESSAGE_FIRST = 4096
_ROUNDS = 64


@dataclass(frozen=True, slots=True)
class Fitted:
    """The raw value to send, and what was cut (None: the Event fitted as it was)."""

    value: bytes
    marker: dict[str, Any] | None


class Unfittable(ValueError):
    """Even the Event's bare identity is over the limit (no API server writes such an Event)."""


def fit(event: dict[str, Any], limit: int) -> Fitted:
    """The raw value of ``event`` (see :func:`streams.core.events.encode_raw`), cut to at most ``limit`` bytes."""
    value = encode_raw(event)
    # Escaping takes at most 6 bytes per character: most Events are far below the limit, and skip
    # the second encoding.
    if len(value) * 6 <= limit or _size(strip_managed_fields(event)) <= limit:
        return Fitted(value, None)
    doc: dict[str, Any] = json.loads(value)
    marker: dict[str, Any] = {"originalBytes": len(value), "sha256": hashlib.sha256(value).hexdigest(), "fields": []}
    doc["truncated"] = marker
    for _ in range(_ROUNDS):
        size = _size(doc)
        if size <= limit:
            return Fitted(_utf8(doc), marker)
        candidate = _biggest(doc)
        if candidate is None:
            break
        path, text, encoded = candidate
        keep = max(MIN_CUT // 2, encoded - (size - limit) - _encoded_len(SUFFIX) - 16)
        _assign(doc, path, _prefix(text, keep) + SUFFIX)
        name = ".".join(str(p) for p in path)
        if name not in marker["fields"] and len(marker["fields"]) < 20:
            marker["fields"].append(name)
    skeleton = _skeleton(doc, marker)
    if _size(skeleton) > limit:
        raise Unfittable(f"identity alone is {_size(skeleton)} bytes, limit {limit}")
    return Fitted(_utf8(skeleton), marker)


def _utf8(doc: dict[str, Any]) -> bytes:
    return json.dumps(doc, ensure_ascii=False, separators=(",", ":")).encode()


def _size(doc: Any) -> int:
    return len(json.dumps(doc, ensure_ascii=True, separators=(",", ":")))


def _encoded_len(text: str) -> int:
    return len(json.dumps(text, ensure_ascii=True)) - 2


def _strings(doc: dict[str, Any]) -> list[tuple[tuple[str | int, ...], str]]:
    """Every string value with its path (iterative: depth is the input's, not ours to trust)."""
    out: list[tuple[tuple[str | int, ...], str]] = []
    stack: list[tuple[tuple[str | int, ...], Any]] = [((), doc)]
    while stack:
        path, node = stack.pop()
        if isinstance(node, dict):
            stack.extend(((*path, k), v) for k, v in node.items() if not (not path and k == "truncated"))
        elif isinstance(node, list):
            stack.extend(((*path, i), v) for i, v in enumerate(node))
        elif isinstance(node, str):
            out.append((path, node))
    return out


def _biggest(doc: dict[str, Any]) -> tuple[tuple[str | int, ...], str, int] | None:
    """The next string to cut: the message while it is long, else the longest cuttable string."""
    best: tuple[tuple[str | int, ...], str, int] | None = None
    for path, text in _strings(doc):
        if path in PROTECTED or len(text) * 6 < MIN_CUT:
            continue
        encoded = _encoded_len(text)
        if encoded < MIN_CUT:
            continue
        if path == ("message",) and encoded > MESSAGE_FIRST:
            return path, text, encoded
        if best is None or encoded > best[2]:
            best = (path, text, encoded)
    return best


def _prefix(text: str, budget: int) -> str:
    """The longest prefix of ``text`` whose JSON encoding takes at most ``budget`` bytes."""
    low, high = 0, len(text)
    while low < high:
        mid = (low + high + 1) // 2
        if _encoded_len(text[:mid]) <= budget:
            low = mid
        else:
            high = mid - 1
    return text[:low]


def _assign(doc: Any, path: tuple[str | int, ...], value: str) -> None:
    node = doc
    for key in path[:-1]:
        node = node[key]
    node[path[-1]] = value


def _skeleton(doc: dict[str, Any], marker: dict[str, Any]) -> dict[str, Any]:
    """The last resort: identity, reason, type, times, the object it is about, a short message."""

    def short(value: Any, limit: int = 253) -> Any:
        if isinstance(value, str):
            return value[:limit]
        return value if isinstance(value, int | float | bool) or value is None else None

    meta = doc.get("metadata") if isinstance(doc.get("metadata"), dict) else {}
    assert isinstance(meta, dict)
    out: dict[str, Any] = {
        "apiVersion": short(doc.get("apiVersion")),
        "kind": short(doc.get("kind")),
        "metadata": {k: meta[k] if k in ("uid", "resourceVersion") else short(meta[k]) for k in _META if k in meta},
    }
    for key in ("reason", "type", "firstTimestamp", "lastTimestamp", "eventTime", "count"):
        if key in doc:
            out[key] = short(doc[key])
    involved = doc.get("involvedObject")
    if isinstance(involved, dict):
        out["involvedObject"] = {k: short(involved[k]) for k in _INVOLVED if isinstance(involved.get(k), str)}
    message = doc.get("message")
    if isinstance(message, str):
        out["message"] = message[:1024] + SUFFIX
    out["truncated"] = {**marker, "fields": ["*"]}
    return out


_META = ("uid", "resourceVersion", "name", "namespace", "creationTimestamp")
_INVOLVED = ("apiVersion", "kind", "name", "namespace", "uid", "resourceVersion", "fieldPath")
