"""``kubectl eventlog`` through the API server's service proxy, without one: the worker's address, the
request, the token choice and what each refusal says. The real path is in tests/e2e/test_explorer_rbac.py."""

from __future__ import annotations

import asyncio
import io
import json
import urllib.parse
from pathlib import Path
from typing import Any

import pytest
import yaml
from hypothesis import given
from hypothesis import strategies as st

from streams.explorer import command, proxy
from streams.explorer.handlers import Explorer
from streams.kube.api import Identity
from tests.unit.test_explorer_access import ALICE, setup
from tests.unit.test_explorer_handlers import Fake, basic, no_counts

# ---------------------------------------------------------------- where the worker is


def test_the_defaults_are_the_k8s_service() -> None:
    service = next(d for d in yaml.safe_load_all(Path("k8s/service.yaml").read_text()) if d["kind"] == "Service")
    where = proxy.target({})
    assert (where.namespace, where.name) == (service["metadata"]["namespace"], service["metadata"]["name"])
    assert where.port in {p["name"] for p in service["spec"]["ports"]}


def test_flags_win_over_the_variable_over_the_defaults() -> None:
    env = {proxy.SERVICE_VARIABLE: "obs/events-k8s-event-streams:8080"}
    assert proxy.target(env) == proxy.Target("obs", "events-k8s-event-streams", "8080")
    assert proxy.target({proxy.SERVICE_VARIABLE: "events"}) == proxy.Target("k8s-event-streams", "events", "web")
    assert proxy.target(env, namespace="mine", port="web") == proxy.Target("mine", "events-k8s-event-streams", "web")


@pytest.mark.parametrize(
    ("env", "flags", "says"),
    [
        ({proxy.SERVICE_VARIABLE: "a/b/c"}, {}, "K8SEV_EVENTLOG_SERVICE='a/b/c': expected"),
        ({proxy.SERVICE_VARIABLE: "Obs/x"}, {}, "K8SEV_EVENTLOG_SERVICE='Obs/x': not a namespace"),
        ({}, {"name": "../../secrets"}, "--service '../../secrets'"),
        ({}, {"namespace": "a?b"}, "--service-namespace 'a?b'"),
        ({}, {"port": "99999"}, "--service-port '99999'"),
        ({}, {"port": "web/../x"}, "--service-port"),
    ],
)
def test_a_bad_service_says_which(env: dict[str, str], flags: dict[str, str], says: str) -> None:
    with pytest.raises(proxy.TargetError, match=f"^{says}".replace("?", r"\?").replace("(", r"\(")):
        proxy.target(env, **flags)


def test_the_proxy_url() -> None:
    where = proxy.Target("k8s-event-streams", "k8s-event-streams", "web")
    url = proxy.api_url("https://10.0.0.1:6443/", where, "search", {"namespace": "team-a", "q": "a b&c"})
    assert url == (
        "https://10.0.0.1:6443/api/v1/namespaces/k8s-event-streams/services/k8s-event-streams:web"
        "/proxy/ui/api/search?namespace=team-a&q=a+b%26c"
    )
    # A server behind a path (a Rancher-style front) keeps it.
    assert proxy.api_url("https://front/k8s/clusters/c-1", where, "top", {}).startswith(
        "https://front/k8s/clusters/c-1/api/v1/namespaces/"
    )
    with pytest.raises(ValueError, match="no explorer API"):
        proxy.api_path(where, "../../healthz")


@given(st.dictionaries(st.text(min_size=1, max_size=10), st.text(max_size=20), max_size=5))
def test_parameters_cannot_leave_the_query_string(params: dict[str, str]) -> None:
    url = proxy.api_url("https://api:6443", proxy.Target(), "search", params)
    parts = urllib.parse.urlsplit(url)
    assert parts.path == "/api/v1/namespaces/k8s-event-streams/services/k8s-event-streams:web/proxy/ui/api/search"
    assert dict(urllib.parse.parse_qsl(parts.query, keep_blank_values=True)) == params and not parts.fragment


# ---------------------------------------------------------------- the token


def test_the_token_goes_to_the_api_server_and_again_to_the_worker() -> None:
    sent = proxy.headers("tok")
    assert sent["Authorization"] == "Bearer tok" and sent[proxy.TOKEN_HEADER] == "tok"
    # The API server's own answers (discovery) need it once.
    assert proxy.TOKEN_HEADER not in proxy.headers("tok", worker=False)


def test_the_flag_wins_then_the_kubeconfig_users_token() -> None:
    choose = {"user": "u", "context": "c", "client_cert": False}
    assert proxy.token_for_worker("flag", "Bearer kube", **choose) == "flag"  # type: ignore[arg-type]
    assert proxy.token_for_worker(None, "Bearer kube", **choose) == "kube"  # type: ignore[arg-type]


def test_a_client_certificate_user_is_told_what_to_do() -> None:
    with pytest.raises(proxy.NoToken) as caught:
        proxy.token_for_worker(None, None, user="admin", context="kind", client_cert=True)
    text = str(caught.value)
    assert "'admin' (context 'kind') signs in with a client certificate" in text
    assert "--token" in text and "kubectl create token" in text and "--es-url" in text


def kubeconfig(tmp_path: Path, user: dict[str, Any], namespace: str = "team-a") -> Path:
    config = {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [{"name": "c", "cluster": {"server": "https://127.0.0.1:1", "insecure-skip-tls-verify": True}}],
        "users": [{"name": "me", "user": user}],
        "contexts": [{"name": "mine", "context": {"cluster": "c", "user": "me", "namespace": namespace}}],
        "current-context": "mine",
    }
    path = tmp_path / "config"
    path.write_text(yaml.safe_dump(config))
    return path


def test_a_certificate_kubeconfig_exits_2_with_the_way_out(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    # Files that exist: the loader reads paths lazily; no key material is needed to find there is no token.
    cert, key = tmp_path / "me.crt", tmp_path / "me.key"
    cert.write_text("")
    key.write_text("")
    config = kubeconfig(tmp_path, {"client-certificate": str(cert), "client-key": str(key)})
    assert command.main(["--kubeconfig", str(config)], {}) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: the kubeconfig's user 'me' (context 'mine') signs in with a client certificate")
    assert "kubectl create token" in err


def test_a_ca_that_does_not_load_exits_2(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    config = kubeconfig(tmp_path, {"token": "t"})
    text = config.read_text().replace("insecure-skip-tls-verify: true", f"certificate-authority: {config}")
    config.write_text(text)
    assert command.main(["--kubeconfig", str(config)], {}) == 2
    assert "its CA or client certificate does not load" in capsys.readouterr().err


def test_no_kubeconfig_exits_2_naming_it(capsys: pytest.CaptureFixture[str]) -> None:
    assert command.main(["-A"], {"KUBECONFIG": "/nonexistent/config"}) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: kubeconfig /nonexistent/config:") and "--es-url" in err


def test_the_kubeconfig_gives_the_server_the_token_and_the_namespace(tmp_path: Path) -> None:
    config = kubeconfig(tmp_path, {"token": "t"})
    args = command.parser().parse_args(["--kubeconfig", str(config), "--service", "events"])
    archive = command.proxy_archive(args, {})
    assert archive.server == "https://127.0.0.1:1" and archive.target == proxy.Target(name="events")
    assert archive.token() == "t"
    # --token replaces the kubeconfig user's token, for the API server and the worker alike.
    args = command.parser().parse_args(["--kubeconfig", str(config), "--token", "other"])
    assert command.proxy_archive(args, {}).token() == "other"
    # And the context's namespace is the default one, as kubectl takes it.
    assert command.search_params(args, {})["namespace"] == "team-a"


# ---------------------------------------------------------------- what a refusal says


def status(code: int, message: str) -> bytes:
    answer = {"kind": "Status", "apiVersion": "v1", "status": "Failure", "message": message, "code": code}
    return json.dumps(answer).encode()


WHERE = proxy.Target()
SERVER = "https://api:6443"


def test_no_services_proxy_right_names_the_role_to_ask_for() -> None:
    line = proxy.refusal(403, status(403, 'services "k8s-event-streams:web" is forbidden'), WHERE, SERVER)
    assert "refuses you the explorer's service proxy" in line
    assert "namespace k8s-event-streams with get on services/proxy, resourceNames [k8s-event-streams:web]" in line


def test_a_forged_token_is_the_api_servers_401() -> None:
    line = proxy.refusal(401, status(401, "Unauthorized"), WHERE, SERVER)
    assert line.startswith(f"the API server at {SERVER} does not accept your credentials (Unauthorized)")


def test_the_workers_own_answers_are_told_apart() -> None:
    body = json.dumps({"error": "u may not list events in namespace 'team-b'", "state": "forbidden"}).encode()
    assert proxy.refusal(403, body, WHERE, SERVER) == (
        "the explorer behind k8s-event-streams/k8s-event-streams:web answered 403:"
        " u may not list events in namespace 'team-b'"
    )
    assert "K8SEV_EXPLORER_AUTH" in proxy.refusal(401, b'{"error": "authentication required"}', WHERE, SERVER)
    assert "--service" in proxy.refusal(404, status(404, 'services "x" not found'), WHERE, SERVER)
    assert proxy.refusal(502, b"<html>bad gateway", WHERE, SERVER).endswith("<html>bad gateway")


# ---------------------------------------------------------------- the worker's side


async def test_kubernetes_mode_takes_the_token_from_the_eventlog_header() -> None:
    explorer, reviewer, _, _ = setup()
    assert await explorer.admit(None, True, "token-a") == ALICE
    # Authorization, when there is one, is what the person presented.
    assert await explorer.admit("Bearer token-c", True, "token-a") != ALICE
    refused = await explorer.admit(None, True, "forged")
    assert not isinstance(refused, Identity) and refused is not None and refused.status == 401
    assert ("token",) in reviewer.calls


@pytest.mark.parametrize("settings", [{"token": "t0ken"}, {"username": "ops", "password": "t0ken"}])
def test_other_modes_ignore_the_eventlog_header(settings: dict[str, str]) -> None:
    core = Explorer(command_settings(**settings), Fake(), "k8s-event-*", no_counts)
    refused = asyncio.run(core.admit(None, True, "t0ken"))
    assert not isinstance(refused, Identity) and refused is not None and refused.status == 401
    good = "Bearer t0ken" if "token" in settings else basic("ops", "t0ken")
    assert asyncio.run(core.admit(good, True, "junk")) is None


def command_settings(**values: str) -> Any:
    from streams.config.settings import ExplorerSettings

    return ExplorerSettings(**values)  # type: ignore[arg-type]


async def test_search_with_source_carries_each_document() -> None:
    hit = {"_id": "u:1", "_source": {"reason": "BackOff", "x": [1]}, "sort": [1, "u", "1"]}
    fake = Fake({"hits": {"hits": [hit], "total": {"value": 1, "relation": "eq"}}})
    core = Explorer(command_settings(), fake, "k8s-event-*", no_counts)
    with_source = json.loads((await core.api("search", {"range": "1h", "source": "1"})).body)
    assert with_source["rows"][0]["source"] == hit["_source"]
    plain = json.loads((await core.api("search", {"range": "1h"})).body)
    assert "source" not in plain["rows"][0]
    assert (await core.api("search", {"source": "yes"})).status == 400


# ---------------------------------------------------------------- the same output either way


class Answers:
    """An archive that answers as the explorer's API does: the engine's answer, through JSON."""

    where = "fake"

    def __init__(self, engine: command.EngineArchive) -> None:
        self.engine = engine

    async def search(self, params: Any) -> dict[str, Any]:
        answer: dict[str, Any] = json.loads(json.dumps(await self.engine.search(params)))
        return answer

    async def close(self) -> None:
        pass


HITS = [
    {
        "_id": f"u{i}:{v}",
        "_source": {
            "@timestamp": f"2026-03-01T12:0{i}:0{v}Z",
            "firstTimestamp": "2026-03-01T11:00:00Z",
            "type": "Warning",
            "reason": "Back\x1bOff",
            "message": f"try {i} \u2028 again",
            "count": v,
            "involvedObject": {"kind": "Pod", "name": f"web-{i}", "namespace": "team-a"},
            "metadata": {"uid": f"u{i}", "name": f"web-{i}.1", "namespace": "team-a"},
        },
        "sort": [i * 10 + v, f"u{i}", str(v)],
    }
    for i in range(3)
    for v in (2, 1)
]


@pytest.mark.parametrize("output", ["table", "wide", "json", "yaml"])
@pytest.mark.parametrize("all_versions", [False, True])
def test_both_paths_print_alike(output: str, all_versions: bool, capsys: pytest.CaptureFixture[str]) -> None:
    fake = Fake({"hits": {"hits": HITS, "total": {"value": len(HITS), "relation": "eq"}}})
    engine = command.EngineArchive(command.connection_settings({}, "http://engine:9200"))
    engine.client = fake
    argv = ["-A", "-o", output, "--limit", "4", *(["--all-versions"] if all_versions else [])]
    args = command.parser().parse_args(argv)
    params = command.search_params(args, {})
    printed = []
    for archive in (engine, Answers(engine)):
        out = io.StringIO()
        assert asyncio.run(command._run(args, params, archive, out)) == 0
        printed.append((out.getvalue(), capsys.readouterr().err))
    assert printed[0] == printed[1] and printed[0][0]
    assert "showing the newest 4 of 6 documents" in printed[0][1]
    if output == "json":
        items = json.loads(printed[0][0])["items"]
        assert items[-1] == HITS[0]["_source"]


# ---------------------------------------------------------------- --for by discovery

GROUP = json.dumps(
    {
        "kind": "APIGroup",
        "name": "example.com",
        "versions": [{"groupVersion": "example.com/v1"}, {"groupVersion": "example.com/v1beta1"}],
        "preferredVersion": {"groupVersion": "example.com/v1beta1"},
    }
).encode()
RESOURCES = json.dumps(
    {
        "kind": "APIResourceList",
        "resources": [
            {"name": "widgetparts/status", "kind": "WidgetPart"},
            {"name": "widgetparts", "singularName": "widgetpart", "kind": "WidgetPart", "shortNames": ["wp"]},
        ],
    }
).encode()


def test_discovery_answers_become_a_kind() -> None:
    assert proxy.group_versions(GROUP) == ["example.com/v1beta1", "example.com/v1"]
    assert proxy.group_versions(b"not json") == []
    for name in ("widgetparts", "widgetpart", "wp", "WidgetPart", "WIDGETPARTS"):
        assert proxy.kind_in(name, RESOURCES) == "WidgetPart", name
    assert proxy.kind_in("status", RESOURCES) is None
    assert proxy.kind_in("widgetparts", b"[]") is None


def test_only_names_no_built_in_matches_are_discovered() -> None:
    assert command.to_discover("deployment.apps/web") is None
    assert command.to_discover("po/web-1") is None
    assert command.to_discover("widgetparts.example.com/w1") == ("widgetparts", "example.com")
    assert command.to_discover("deployment.example.com/d") == ("deployment", "example.com")
    assert command.to_discover("replicationcontroller/rc") == ("replicationcontroller", "")
    found = command.for_object("widgetparts.example.com/w1", "WidgetPart")
    assert found == {"kind": "WidgetPart", "name": "w1", "group": "example.com"}
    # Discovery silent (the CRD gone): the text is taken as a kind, as before.
    assert command.for_object("WidgetPart.example.com/w1")["kind"] == "WidgetPart"
