"""``kubectl eventlog``'s flags as explorer parameters, and kubectl's duration format."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import pytest

from streams.explorer import command


def params(*argv: str, env: dict[str, str] | None = None) -> dict[str, str]:
    return command.search_params(command.parser().parse_args(list(argv)), env or {"KUBECONFIG": "/nonexistent"})


def test_flags_become_explorer_parameters() -> None:
    got = params("-n", "demo", "--for", "deploy/web", "--types", "Warning", "--reason", "BackOff", "--since", "7d")
    assert got == {
        "namespace": "demo",
        "kind": "Deployment",
        "name": "web",
        "type": "Warning",
        "reason": "BackOff",
        "range": "7d",
    }
    assert "namespace" not in params("-A")
    assert params("--from", "2026-03-01T03:00:00Z") == {"from": "2026-03-01T03:00:00Z", "namespace": "default"}
    assert params("--for", "Widget/w1")["kind"] == "Widget"


def test_the_default_namespace_is_the_kubeconfig_contexts(tmp_path: Path) -> None:
    config = tmp_path / "config"
    config.write_text(
        "current-context: b\ncontexts:\n"
        "- name: a\n  context: {namespace: one}\n- name: b\n  context: {namespace: two}\n"
    )
    assert params(env={"KUBECONFIG": str(config)})["namespace"] == "two"


@pytest.mark.parametrize(
    ("argv", "says"),
    [
        (["--since", "1h", "--from", "2026-03-01T00:00:00Z"], "exclude"),
        (["--for", "web"], "KIND/NAME"),
        (["--since", "soon"], "--since"),
        (["--types", "Error"], "--types"),
        (["--limit", "0"], "--limit"),
    ],
)
def test_bad_flags_say_which(argv: list[str], says: str) -> None:
    with pytest.raises(command.UsageError, match=says):
        params(*argv)


def test_bad_flags_exit_2(capsys: pytest.CaptureFixture[str]) -> None:
    assert command.main(["--since", "soon"], {}) == 2
    assert capsys.readouterr().err.startswith("error: --since")


@pytest.mark.parametrize(
    ("seconds", "text"),
    [(-5, "<invalid>"), (0, "0s"), (119, "119s"), (125, "2m5s"), (600, "10m"), (3 * 3600, "3h"),
     (3 * 3600 + 60, "3h1m"), (30 * 3600, "30h"),
     (3 * 86400 + 7200, "3d2h"), (40 * 86400, "40d"), (800 * 86400, "2y70d"), (3000 * 86400, "8y")],
)  # fmt: skip
def test_human_duration_is_kubectls(seconds: int, text: str) -> None:
    assert command.human_duration(timedelta(seconds=seconds)) == text


def test_one_row_per_event_its_newest_version() -> None:
    rows = [{"uid": "a", "id": "a:3"}, {"uid": "b", "id": "b:2"}, {"uid": "a", "id": "a:1"}]
    kept, docs = command.newest_versions(rows, [{"n": 1}, {"n": 2}, {"n": 3}])
    assert [r["id"] for r in kept] == ["a:3", "b:2"] and docs == [{"n": 1}, {"n": 2}]
