"""The worker's event loop: uvloop unless ``FAUST_LOOP`` names another.

uvloop cut the worker's CPU per event by about 13% (bench.sink, docs/benchmarks.md): the worker's
time is mostly the loop's own machinery, callbacks and socket writes, which uvloop does in C.
Faust reads ``FAUST_LOOP`` (or ``-L``) when it is imported; an operator who sets it keeps that choice.
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import Mapping


def choose(environ: Mapping[str, str] | None = None) -> str:
    """Install uvloop's policy before the worker makes its loop, unless ``FAUST_LOOP`` chose one;
    returns the loop in use (``uvloop``, or what ``FAUST_LOOP`` says)."""
    env = os.environ if environ is None else environ
    chosen = env.get("FAUST_LOOP") or env.get("F_LOOP")
    if chosen:
        return chosen
    import uvloop

    asyncio.set_event_loop_policy(uvloop.EventLoopPolicy())
    return "uvloop"
