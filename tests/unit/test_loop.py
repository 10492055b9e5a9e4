"""The worker's event loop: uvloop by default, FAUST_LOOP respected."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator

import pytest
import uvloop

from streams.core import loop


@pytest.fixture
def policy() -> Iterator[None]:
    before = asyncio.get_event_loop_policy()
    yield
    asyncio.set_event_loop_policy(before)


def test_uvloop_unless_told_otherwise(policy: None) -> None:
    assert loop.choose({}) == "uvloop"
    assert isinstance(asyncio.get_event_loop_policy(), uvloop.EventLoopPolicy)


def test_faust_loop_keeps_the_operators_choice(policy: None) -> None:
    before = asyncio.get_event_loop_policy()
    assert loop.choose({"FAUST_LOOP": "aio"}) == "aio"
    assert asyncio.get_event_loop_policy() is before
