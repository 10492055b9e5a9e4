"""Dead letters: one builder, with the size cap, for every stage that rejects a record.

A letter carries why (a stable ``reason``), where the record came from, and the original value:
UTF-8 text when it decodes, else base64, cut to :data:`MAX_ORIGINAL_BYTES` with its full size and
sha256 kept, so the letter itself always fits in a Kafka record.
"""

from __future__ import annotations

import base64
import hashlib
import json
from dataclasses import dataclass

#: Kafka refuses records over about 1 MB by default; a letter must fit with room to spare.
MAX_ORIGINAL_BYTES = 256 * 1024
#: The original as the letter's JSON writes it (``\\u`` escapes: up to six bytes per input byte).
MAX_ORIGINAL_JSON = 512 * 1024
MAX_DETAIL_CHARS = 2000
MAX_KEY_CHARS = 1024


@dataclass(frozen=True, slots=True)
class Letter:
    """The fields of :class:`streams.core.records.DeadLetter`."""

    stage: str
    reason: str
    detail: str
    topic: str
    partition: int
    offset: int
    original: str
    encoding: str
    key: str | None
    size: int
    sha256: str
    truncated: bool


def build(
    stage: str,
    reason: str,
    detail: str,
    *,
    value: bytes | None,
    key: bytes | str | None,
    topic: str,
    partition: int = -1,
    offset: int = -1,
) -> Letter:
    raw = value or b""
    kept = raw[:MAX_ORIGINAL_BYTES]
    try:
        original, encoding = kept.decode("utf-8"), "utf-8"
    except UnicodeDecodeError as exc:
        # A cut in the middle of a character is not invalid UTF-8 in the original.
        if len(kept) < len(raw) and exc.start >= len(kept) - 3:
            original, encoding = kept[: exc.start].decode("utf-8", "replace"), "utf-8"
        else:
            original, encoding = base64.b64encode(kept).decode("ascii"), "base64"
    truncated = len(kept) < len(raw)
    escaped = len(json.dumps(original))
    while escaped > MAX_ORIGINAL_JSON:
        truncated = True
        # Control characters or astral code points escape to 6-12 bytes each: cut the text further.
        original = original[: len(original) * MAX_ORIGINAL_JSON // escaped - 16]
        escaped = len(json.dumps(original))
    text_key = key.decode("utf-8", "replace") if isinstance(key, bytes) else key
    return Letter(
        stage=stage,
        reason=reason,
        detail=detail[:MAX_DETAIL_CHARS],
        topic=topic,
        partition=partition,
        offset=offset,
        original=original,
        encoding=encoding,
        key=text_key[:MAX_KEY_CHARS] if text_key is not None else None,
        size=len(raw),
        sha256=hashlib.sha256(raw).hexdigest(),
        truncated=truncated,
    )
