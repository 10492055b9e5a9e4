"""The wheel: agents/ and tables/ ship inside the package, never as top-level `agents` or `tables`."""

from __future__ import annotations

import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]

pytestmark = pytest.mark.deploy


@pytest.fixture(scope="module")
def wheel_files(tmp_path_factory: pytest.TempPathFactory) -> set[str]:
    out = tmp_path_factory.mktemp("wheel")
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "-w", str(out), str(ROOT)],
        check=True,
        capture_output=True,
    )
    (wheel,) = out.glob("*.whl")
    with zipfile.ZipFile(wheel) as archive:
        return set(archive.namelist())


def test_the_stages_ship_under_the_package(wheel_files: set[str]) -> None:
    for stage in ("ingest", "dedup", "counts", "sink", "retention"):
        assert f"streams/agents/{stage}.py" in wheel_files
    assert {"streams/tables/dedup.py", "streams/tables/counts.py", "streams/pipeline.py"} <= wheel_files


def test_every_package_under_streams_ships(wheel_files: set[str]) -> None:
    # The package list in pyproject.toml is explicit (package-dir mapping): a new subpackage must be named there.
    sources = {p.parent.relative_to(ROOT).as_posix() for p in (ROOT / "streams").rglob("__init__.py")}
    shipped = {name.rsplit("/", 1)[0] for name in wheel_files if name.endswith("/__init__.py")}
    assert sources <= shipped


def test_no_top_level_agents_or_tables(wheel_files: set[str]) -> None:
    top = {name.split("/", 1)[0] for name in wheel_files if "/" in name}
    assert {name for name in top if not name.endswith(".dist-info")} == {"streams"}


def test_the_repository_has_no_symlinks() -> None:
    listed = subprocess.run(["git", "ls-files", "-s"], cwd=ROOT, check=True, capture_output=True, text=True).stdout
    assert [line for line in listed.splitlines() if line.startswith("120000")] == []
