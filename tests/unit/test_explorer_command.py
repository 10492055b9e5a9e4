"""``kubectl eventlog``'s flags as explorer parameters, and kubectl's duration format."""

from __future__ import annotations

import io
import json
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import yaml
from hypothesis import given
from hypothesis import strategies as st

from streams.explorer import command, query


def params(*argv: str, env: dict[str, str] | None = None) -> dict[str, str]:
    return command.search_params(command.parser().parse_args(list(argv)), env or {"KUBECONFIG": "/nonexistent"})


def test_flags_become_explorer_parameters() -> None:
    got = params("-n", "demo", "--for", "deploy/web", "--types", "Warning", "--reason", "BackOff", "--since", "7d")
    assert got == {
        "namespace": "demo",
        "owner": "Deployment/web",
        "type": "Warning",
        "reason": "BackOff",
        "range": "7d",
    }
    assert "namespace" not in params("-A")
    assert params("--from", "2026-03-01T03:00:00Z") == {"from": "2026-03-01T03:00:00Z", "namespace": "default"}
    assert params("--for", "Widget/w1")["owner"] == "Widget/w1"
    assert params("-l", "app=web,tier!=db")["labels"] == "app=web,tier!=db"
    with pytest.raises(command.UsageError, match="labels"):
        params("-l", "app=(web")


@pytest.mark.parametrize(
    ("flag", "want"),
    [
        ("deployment.apps/web", {"kind": "Deployment", "name": "web"}),
        ("deployments.apps/web", {"kind": "Deployment", "name": "web"}),
        ("deploy/web", {"kind": "Deployment", "name": "web"}),
        ("cj.batch/nightly", {"kind": "CronJob", "name": "nightly"}),
        ("Pod/p", {"kind": "Pod", "name": "p"}),
        ("node/kwok-node-0", {"kind": "Node", "name": "kwok-node-0"}),
        # A CRD by its kind and group; a kind that shares a built-in's name in another group is that group's.
        ("widget.example.com/w1", {"kind": "Widget", "name": "w1", "group": "example.com"}),
        (
            "CertificateRequest.cert-manager.io/c",
            {"kind": "CertificateRequest", "name": "c", "group": "cert-manager.io"},
        ),
        ("deployment.example.com/d", {"kind": "Deployment", "name": "d", "group": "example.com"}),
    ],
)
def test_for_takes_kubectl_events_resource_forms(flag: str, want: dict[str, str]) -> None:
    got = params("--for", flag)
    assert command.for_object(flag) == want
    if "group" in want:
        # A kind of another group than the built-in's: that object's events only.
        assert {k: v for k, v in got.items() if k in ("kind", "name", "group")} == want
    else:
        # The object and what it owns, through the recorded owner chain.
        assert got["owner"] == f"{want['kind']}/{want['name']}" and "kind" not in got


def test_types_are_case_insensitive_as_kubectl_events_takes_them() -> None:
    assert params("--types", "warning")["type"] == "warning"
    search, _ = query.parse_search({"type": "warning,NORMAL,Warning"}, datetime.now(UTC))
    assert search.types == ("Warning", "Normal")


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
        (["--for", "web"], "RESOURCE/NAME"),
        (["--for", "pod/a/b"], "RESOURCE/NAME"),
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


# ---------------------------------------------------------------- terminal safety

CONTROLS = {chr(c) for c in [*range(0x20), *range(0x7F, 0xA0)]} - {"\t"}
# Any text an Event may carry: every code point but surrogates (JSON from the archive has none).
TEXT = st.text(st.characters(exclude_categories=["Cs"]), max_size=30)


def printed(output: str, docs: list[dict[str, Any]], *, final: bool = True) -> str:
    out = io.StringIO()
    printer = command.Printer(output, out, wide=output == "wide", namespaces=True)
    printer.header(False)
    hits = [{"_id": f"u{i}:1", "_source": doc} for i, doc in enumerate(docs)]
    printer.rows([query.row(h) for h in hits], docs, final=final)
    return out.getvalue()


def event_doc(text: dict[str, str]) -> dict[str, Any]:
    """A document with every field the table or wide output prints set from ``text``."""
    return {
        "@timestamp": "2026-03-01T12:00:00Z",
        "type": text["type"],
        "reason": text["reason"],
        "message": text["message"],
        "involvedObject": {
            "kind": text["kind"],
            "name": text["name"],
            "namespace": text["namespace"],
            "fieldPath": text["subobject"],
        },
        "metadata": {"name": text["event"], "uid": text["uid"], "namespace": text["namespace"]},
        "source": {"component": text["component"], "host": text["host"]},
        "reportingComponent": text["reporting"],
        "count": 3,
    }


FIELDS = ("type", "reason", "message", "kind", "name", "namespace", "subobject", "event", "uid")
DOC = st.fixed_dictionaries({k: TEXT for k in (*FIELDS, "component", "host", "reporting")}).map(event_doc)


@given(st.lists(DOC, min_size=1, max_size=4), st.sampled_from(["table", "wide"]))
def test_no_control_character_reaches_table_or_wide_output(docs: list[dict[str, Any]], output: str) -> None:
    text = printed(output, docs)
    lines = text.split("\n")
    # A header, one line per event, the final newline: an event can start no line of its own.
    assert len(lines) == len(docs) + 2 and lines[-1] == ""
    assert not CONTROLS & set("".join(lines))


@given(st.lists(DOC, max_size=4), st.sampled_from(["json", "yaml"]), st.booleans())
def test_json_and_yaml_carry_every_string_exactly(docs: list[dict[str, Any]], output: str, final: bool) -> None:
    text = printed(output, docs, final=final)
    if output == "json":
        got = json.loads(text)["items"] if final else [json.loads(line) for line in text.splitlines()]
    else:
        got = yaml.safe_load(text)["items"] if final else list(yaml.safe_load_all(text))
    assert got == docs
    # Exact, and still nothing a terminal would act on: JSON escapes every control, YAML quotes them.
    assert not CONTROLS - {"\n"} & set(text)


@pytest.mark.parametrize(
    ("text", "shown"),
    [
        ("\x1b]0;owned\x07", "^[]0;owned^G"),  # OSC: set the window title
        ("\x1b[2J\x1b[H", "^[[2J^[[H"),  # CSI: clear the screen
        ("ok\rforged", "ok\\rforged"),  # carriage return: overwrite the line (kubectl's \r)
        ("\x9b31m\x9d8;;x\x9c", "\\x9b31m\\x9d8;;x\\x9c"),  # C1 CSI, OSC, ST
        ("a\x00b\x7fc\td", "a^@b^?c\td"),  # NUL, DEL; tab kept
        ("plain ümlaut 日本", "plain ümlaut 日本"),
    ],
)
def test_control_characters_are_shown_as_kubectl_shows_them(text: str, shown: str) -> None:
    assert command.terminal_safe(text) == shown


def test_a_reason_with_an_escape_sequence_prints_escaped() -> None:
    doc = event_doc(dict.fromkeys((*FIELDS, "component", "host", "reporting"), "x") | {"reason": "\x1b[31mRed"})
    row = printed("table", [doc]).splitlines()[1]
    assert "^[[31mRed" in row and "\x1b" not in row


def test_an_error_line_prints_escaped(capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> None:
    # Settings quote what they name; this is the line for text that arrives unquoted (an engine's error).
    def refuse(*_: Any) -> dict[str, str]:
        raise command.UsageError("the engine said \x1b]0;owned\x07")

    monkeypatch.setattr(command, "search_params", refuse)
    assert command.main(["-A"], {}) == 2
    assert capsys.readouterr().err == "error: the engine said ^[]0;owned^G\n"


# ---------------------------------------------------------------- kubectl events' columns


def test_object_is_kind_slash_name_and_last_seen_counts_repeats_as_kubectl_events() -> None:
    now = datetime.now(UTC)
    doc = {
        "@timestamp": (now - timedelta(minutes=5)).isoformat(),
        "firstTimestamp": (now - timedelta(hours=2)).isoformat(),
        "count": 12,
        "type": "Warning",
        "reason": "BackOff",
        "message": "Back-off restarting failed container",
        "involvedObject": {"kind": "Pod", "name": "web-1", "namespace": "demo"},
        "metadata": {"uid": "u", "namespace": "demo"},
    }
    single = {**doc, "count": 1, "metadata": {"uid": "v", "namespace": "demo"}}
    out = io.StringIO()
    printer = command.Printer("table", out, wide=False, namespaces=False)
    printer.header(False)
    hits = [{"_id": "u:1", "_source": doc}, {"_id": "v:1", "_source": single}]
    printer.rows([query.row(h) for h in hits], [doc, single], final=True)
    header, repeated, once = out.getvalue().splitlines()
    assert header.split() == ["LAST", "SEEN", "TYPE", "REASON", "OBJECT", "MESSAGE"]
    assert repeated.startswith("5m (x12 over 120m)   Warning   BackOff   Pod/web-1   Back-off")
    # Seen once: its age, as kubectl events shows it (from the first time).
    assert once.startswith("120m                 Warning")


def test_the_group_narrows_by_api_version() -> None:
    search, _ = query.parse_search({"kind": "Widget", "name": "w1", "group": "example.com"}, datetime.now(UTC))
    assert {"prefix": {"involvedObject.apiVersion": "example.com/"}} in query.filter_clauses(search)
    plain, _ = query.parse_search({"kind": "Pod"}, datetime.now(UTC))
    assert not any("prefix" in c for c in query.filter_clauses(plain))
