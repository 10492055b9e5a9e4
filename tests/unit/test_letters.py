"""A dead letter has one set of fields: streams.core.letters.Letter's, as the Faust record DeadLetter carries them.

Two definitions because the letters module is pure (no Faust: import contract) and a Faust record
declares its fields in its own class body; this test is what keeps them one.
"""

from __future__ import annotations

import dataclasses

from streams.core import letters
from streams.core.records import DeadLetter


def test_dead_letter_has_exactly_the_fields_of_letter_in_order_with_the_same_types() -> None:
    fields = {f.name: f.type for f in dataclasses.fields(letters.Letter)}
    record = {name: kind for name, kind in DeadLetter.__annotations__.items() if not name.startswith("_")}
    assert list(record) == list(fields)
    assert record == fields


def test_a_letter_survives_the_dead_letter_record_and_its_json_unchanged() -> None:
    letter = letters.build(
        "dedup", "invalid_json", "Expecting value", value=b"\xff{not json", key=b"k", topic="raw", partition=2, offset=7
    )
    loaded = DeadLetter.loads(DeadLetter.of(letter).dumps())
    assert {name: getattr(loaded, name) for name in DeadLetter.__annotations__} == dataclasses.asdict(letter)
