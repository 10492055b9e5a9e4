"""Docs that must match the code."""

from __future__ import annotations

from pathlib import Path

from streams.config.settings import markdown_table

ROOT = Path(__file__).resolve().parents[2]


def test_configuration_page_lists_every_setting_as_the_code_defines_it() -> None:
    assert markdown_table() in (ROOT / "docs" / "configuration.md").read_text()


def test_readme_starts_with_the_two_commands() -> None:
    lines = (ROOT / "README.md").read_text().splitlines()
    assert lines[3].startswith("scripts/dev demo") and lines[4].startswith("scripts/dev test")
    assert (ROOT / ".ci" / "run").read_text().rstrip().endswith("exec scripts/dev test")
