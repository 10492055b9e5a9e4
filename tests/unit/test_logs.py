from __future__ import annotations

from streams.core.logs import fmt


def test_logfmt_quotes_what_needs_quoting_and_skips_none() -> None:
    line = fmt("watch_failed", scope="*", error='boom "x"\nnext', retry_in=1.5, missing=None, empty="")
    assert line == 'event=watch_failed scope=* error="boom \\"x\\"\\nnext" retry_in=1.5 empty=""'
