"""Rewrite the settings tables of docs/configuration.md from the docstrings of streams/config/settings.py's fields."""

from __future__ import annotations

from pathlib import Path

from streams.config.settings import markdown_table

PAGE = Path(__file__).resolve().parents[1] / "docs" / "configuration.md"
START, END = "### App", "\nThe tables are generated"


def main() -> None:
    text = PAGE.read_text()
    head, rest = text.split(START, 1)
    _, tail = rest.split(END, 1)
    PAGE.write_text(head + markdown_table() + END + tail)


if __name__ == "__main__":
    main()
