"""Patterns the ingest filters match with: RE2 regular expressions, and globs over namespace names.

Both run on the ingest loop for every event, on text that comes from outside (a message can be
megabytes), so both are compiled by RE2: its matching time is linear in the text whatever the
pattern, where a backtracking engine (Python's ``re``) can take exponential time on a pattern such
as ``(a+)+$``. A pattern RE2 refuses (look-around, backreferences, a program over ``MAX_MEM``) is a
settings error at start-up, never a failure while ingesting. The settings parsers validate with the
same functions the filter compiles with, so what was validated is what runs.
"""

from __future__ import annotations

import re

import re2

#: RE2's own default program budget (8 MiB): a pattern that needs more is refused when compiled.
MAX_MEM = 8 << 20
#: A glob: ``*`` any run of characters, ``?`` one character; the rest is literal.
GLOB_CHARS = frozenset("*?")
_GLOB_PART = re.compile(r"(\*|\?)")


def _options() -> re2.Options:
    options = re2.Options()
    options.max_mem = MAX_MEM
    # Filters ask "does it match", never for groups: RE2 may then use its fastest engine.
    options.never_capture = True
    # Errors are raised (and become settings errors); RE2 would also print them to stderr.
    options.log_errors = False
    return options


class Regex:
    """A compiled RE2 pattern; :meth:`search` is true when it matches anywhere in the text."""

    __slots__ = ("_compiled", "pattern")

    def __init__(self, pattern: str) -> None:
        self.pattern = pattern
        try:
            # A bytes pattern searches bytes: the str API would map every match's offsets back to characters.
            self._compiled = re2.compile(pattern.encode("utf-8", "surrogatepass"), _options())
        except re2.error as exc:
            raise ValueError(_reason(exc)) from None

    def search(self, text: str) -> bool:
        # surrogatepass: a lone surrogate (valid in JSON's \\u escapes) must not raise on the ingest loop.
        return self._compiled.search(text.encode("utf-8", "surrogatepass")) is not None

    def __repr__(self) -> str:
        return f"Regex({self.pattern!r})"


def _reason(exc: Exception) -> str:
    detail = exc.args[0] if exc.args else exc
    text = detail.decode("utf-8", "replace") if isinstance(detail, bytes) else str(detail)
    return f"not an RE2 regular expression ({text}); RE2 has no look-around or backreferences"


def message_regex(pattern: str) -> Regex:
    """``pattern`` compiled, or ValueError saying why it cannot be a message filter."""
    regex = Regex(pattern)
    if regex.search(""):
        raise ValueError(f"{pattern!r} matches the empty string, so it would drop every event")
    return regex


def is_glob(item: str) -> bool:
    return not GLOB_CHARS.isdisjoint(item)


class Names:
    """Exact names and globs of them: ``name in names`` is true when one equals or matches ``name``."""

    __slots__ = ("exact", "globs")

    def __init__(self, items: tuple[str, ...]) -> None:
        self.exact = frozenset(item for item in items if not is_glob(item))
        self.globs = glob_regex(tuple(item for item in items if is_glob(item)))

    def __contains__(self, name: str) -> bool:
        return name in self.exact or (self.globs is not None and self.globs.search(name))


def glob_regex(globs: tuple[str, ...]) -> Regex | None:
    """One RE2 pattern that matches a whole name when any of ``globs`` does; None for no globs."""
    if not globs:
        return None
    alternatives = []
    for glob in globs:
        parts = _GLOB_PART.split(glob)
        alternatives.append("".join(".*" if p == "*" else "." if p == "?" else re2.escape(p) for p in parts))
    # (?s): a glob's * matches any character, as fnmatch's does.
    return Regex("(?s)^(?:" + "|".join(alternatives) + ")$")
