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


# ---------------------------------------------------------------- the connection


def test_the_connection_comes_from_the_worker_settings_that_locate_the_archive(tmp_path: Path) -> None:
    password = tmp_path / "password"
    password.write_text("hunter2\n")
    env = {
        "K8SEV_ES_URL": "https://es-0:9200,https://es-1:9200",
        "K8SEV_SEARCH_ENGINE": "opensearch",
        "K8SEV_ES_USERNAME": "reader",
        "K8SEV_ES_PASSWORD_FILE": str(password),
        "K8SEV_INDEX_PREFIX": "kube-events",
        # The worker's other settings are not the command's: not even an invalid one stops it.
        "K8SEV_TOPIC_REPLICAS": "bogus",
        "K8SEV_BROKER": "not a url",
    }
    search = command.connection_settings(env, None).search
    assert search.urls == ("https://es-0:9200", "https://es-1:9200")
    assert (search.engine, search.username, search.password) == ("opensearch", "reader", "hunter2")
    assert search.index_prefix == "kube-events"
    assert command.connection_settings({}, None).search.urls == ("http://localhost:9200",)


def test_es_url_wins_over_the_variable_and_keeps_the_rest() -> None:
    env = {"K8SEV_ES_URL": "http://from-env:9200", "K8SEV_INDEX_PREFIX": "kube-events"}
    search = command.connection_settings(env, "http://flag-0:9200, http://flag-1:9200").search
    assert search.urls == ("http://flag-0:9200", "http://flag-1:9200")
    assert search.index_prefix == "kube-events"
    # An empty flag is no flag.
    assert command.connection_settings(env, "").search.urls == ("http://from-env:9200",)


def test_a_bad_connection_setting_is_a_usage_error_naming_its_source(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(command.UsageError, match=r"^--es-url='ftp://x': 'ftp://x' is not an http\(s\):// URL$"):
        command.connection_settings({"K8SEV_ES_URL": "http://fine:9200"}, "ftp://x")
    with pytest.raises(command.UsageError, match=r"^K8SEV_ES_URL='es:9200'"):
        command.connection_settings({"K8SEV_ES_URL": "es:9200"}, None)
    with pytest.raises(command.UsageError, match="K8SEV_ES_API_KEY and K8SEV_ES_USERNAME are exclusive"):
        command.connection_settings({"K8SEV_ES_API_KEY": "k", "K8SEV_ES_USERNAME": "u"}, None)
    assert command.main(["-A", "--es-url", "ftp://x"], {"KUBECONFIG": "/nonexistent"}) == 2
    assert capsys.readouterr().err.startswith("error: --es-url='ftp://x'")
