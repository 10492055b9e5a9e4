"""Faust's notion of the event being processed, for table writes made after a batch.

Faust sends a table's changelog record to the partition of the event being processed, and its
RocksDB store writes into that partition's database. ``take_events()``/``noack_take()`` leave no
event current while a batch is handled, so a batch's writes name one event of the right partition.
"""

from __future__ import annotations

import contextlib
import weakref
from collections.abc import Iterator

from faust.streams import _current_event
from faust.types import EventT


@contextlib.contextmanager
def processing(event: EventT) -> Iterator[None]:
    token = _current_event.set(weakref.ref(event))
    try:
        yield
    finally:
        _current_event.reset(token)
