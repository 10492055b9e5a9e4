"""The explorer's answers without a web server: settings, auth, states and headers.

The search client is a fake here (pure answer logic); the real engines are in tests/e2e/test_explorer.py.
"""

from __future__ import annotations

import asyncio
import base64
import json
import subprocess
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import pytest

from streams.config.settings import ExplorerSettings, Settings, SettingsError
from streams.explorer.handlers import CSP, Explorer
from streams.search.client import SearchFailed, SearchUnavailable

ROOT = Path(__file__).resolve().parents[2]
VENDOR = ROOT / "streams" / "explorer" / "static" / "vendor" / "uplot"


class Fake:
    def __init__(self, answer: Any = None, error: BaseException | None = None, delay: float = 0) -> None:
        self.answer = answer or {"hits": {"hits": [], "total": {"value": 0, "relation": "eq"}}}
        self.error, self.delay = error, delay
        self.bodies: list[Mapping[str, Any]] = []

    async def search(self, index: str, body: Mapping[str, Any]) -> dict[str, Any]:
        self.bodies.append(body)
        if self.delay:
            await asyncio.sleep(self.delay)
        if self.error:
            raise self.error
        return dict(self.answer)


async def no_counts(params: Mapping[str, str], token: str | None = None) -> dict[str, Any]:
    raise AssertionError("the count view is not asked here")


def explorer(search: Fake | None = None, **settings: Any) -> Explorer:
    return Explorer(ExplorerSettings(**settings), search or Fake(), "k8s-event-*", no_counts)


def basic(user: str, password: str) -> str:
    return "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()


# ---------------------------------------------------------------- settings


def test_settings_default_to_an_open_page() -> None:
    settings = Settings.from_env({}).explorer
    assert settings == ExplorerSettings()
    assert settings.enabled and not settings.protected


def test_settings_read_secrets_from_files(tmp_path: Path) -> None:
    (tmp_path / "token").write_text("s3cret\n")
    settings = Settings.from_env(
        {"K8SEV_EXPLORER_TOKEN_FILE": str(tmp_path / "token"), "K8SEV_EXPLORER_TIMEOUT": "500ms"}
    )
    assert (settings.explorer.token, settings.explorer.timeout) == ("s3cret", 0.5)
    assert settings.describe()["explorer.token"] == "***"


def test_settings_name_every_problem(tmp_path: Path) -> None:
    with pytest.raises(SettingsError) as caught:
        Settings.from_env(
            {
                "K8SEV_EXPLORER": "maybe",
                "K8SEV_EXPLORER_USERNAME": "ops",
                "K8SEV_EXPLORER_TOKEN_FILE": str(tmp_path / "missing"),
                "K8SEV_EXPLORER_TIMEOUT": "forever",
            }
        )
    assert [p.split("=")[0].split(" ")[0] for p in caught.value.problems] == [
        "K8SEV_EXPLORER",
        "K8SEV_EXPLORER_TOKEN_FILE",
        "K8SEV_EXPLORER_TIMEOUT",
        "K8SEV_EXPLORER_USERNAME",
    ]
    with pytest.raises(SettingsError) as caught:
        Settings.from_env({"K8SEV_EXPLORER_USERNAME": "a:b", "K8SEV_EXPLORER_PASSWORD": "x"})
    assert "forbids ':'" in str(caught.value)


# ---------------------------------------------------------------- auth


def test_no_auth_setting_lets_everyone_read() -> None:
    assert explorer().authorized(None)


def test_token_is_needed_as_bearer_or_as_basic_password() -> None:
    core = explorer(token="t0ken")
    assert not core.authorized(None)
    assert not core.authorized("Bearer wrong")
    assert not core.authorized("t0ken")
    assert core.authorized("Bearer t0ken")
    assert core.authorized(basic("anyone", "t0ken"))
    assert not core.authorized(basic("anyone", "nope"))
    assert not core.authorized("Basic !!notbase64")
    refused = core.refused(json_api=True)
    assert refused.status == 401
    assert refused.headers["WWW-Authenticate"].startswith("Basic ")
    assert json.loads(refused.body)["error"] == "authentication required"


def test_basic_auth_needs_the_exact_pair() -> None:
    core = explorer(username="ops", password="pw")
    assert core.authorized(basic("ops", "pw"))
    assert not core.authorized(basic("ops", "pw2"))
    assert not core.authorized(basic("dev", "pw"))
    assert not core.authorized("Bearer pw")


# ---------------------------------------------------------------- answers


def test_page_and_assets_carry_a_strict_csp() -> None:
    core = explorer()
    page = core.page()
    assert page.headers["Content-Security-Policy"] == CSP
    assert "'unsafe-inline'" not in CSP and "'unsafe-eval'" not in CSP
    script = core.asset("explorer.js").body
    assert b"<script" in page.body
    # Nothing of ours parses strings as HTML (the vendored uPlot does not either).
    for sink in (b"innerHTML", b"outerHTML", b"insertAdjacentHTML", b"document.write", b"eval("):
        assert sink not in script
        assert sink not in core.asset("vendor/uplot/uPlot.iife.min.js").body
    assert core.asset("vendor/uplot/uPlot.iife.min.js").content_type == "text/javascript"
    assert core.asset("../handlers.py").status == 404


def test_the_page_has_no_inline_script_or_style_the_csp_would_block() -> None:
    html = explorer().page().body.decode()
    assert "<script>" not in html and "<style" not in html and " on" not in html.replace("\n", " ").split("<body>")[1]


def test_a_worker_always_has_a_search_engine_to_ask() -> None:
    # Why the explorer has no "not configured" state: a worker without K8SEV_ES_URL never starts.
    for empty in ("", " , "):
        with pytest.raises(SettingsError, match=r"K8SEV_ES_URL=.*at least one URL"):
            Settings.from_env({"K8SEV_ES_URL": empty})


@pytest.mark.parametrize(
    ("error", "status", "state"),
    [
        (SearchUnavailable("elasticsearch unreachable: Connection refused"), 503, "unreachable"),
        (SearchFailed(500, "boom"), 502, "failed"),
    ],
)
async def test_engine_failures_are_one_json_line(error: BaseException, status: int, state: str) -> None:
    reply = await explorer(Fake(error=error)).api("histogram", {"range": "1h"})
    assert reply.status == status
    body = json.loads(reply.body)
    assert body["state"] == state and body["error"]


async def test_a_slow_engine_is_cut_off_at_the_timeout() -> None:
    reply = await explorer(Fake(delay=5), timeout=0.05).api("search", {})
    assert reply.status == 503
    assert "0.05s" in json.loads(reply.body)["error"]


async def test_bad_parameters_are_400_with_the_reason() -> None:
    reply = await explorer(Fake()).api("search", {"size": "9999"})
    assert reply.status == 400
    assert "size" in json.loads(reply.body)["error"]
    assert (await explorer(Fake()).api("nope", {})).status == 404


async def test_search_answers_rows_and_the_range() -> None:
    hit = {"_id": "u:1", "_source": {"reason": "BackOff", "message": "<script>x</script>"}, "sort": [1, "u", "1"]}
    fake = Fake({"hits": {"hits": [hit], "total": {"value": 1, "relation": "eq"}}, "took": 3})
    reply = await explorer(fake).api("search", {"range": "1h", "size": "1"})
    body = json.loads(reply.body)
    assert reply.status == 200 and reply.headers["Cache-Control"] == "no-store"
    assert body["rows"][0]["message"] == "<script>x</script>"
    assert body["next"] and body["range"]["to"] - body["range"]["from"] == 3_600_000
    assert fake.bodies[0]["size"] == 1


# ---------------------------------------------------------------- vendored uPlot


def test_vendored_uplot_matches_its_checksums() -> None:
    result = subprocess.run(["sha256sum", "--quiet", "-c", "SHA256SUMS"], cwd=VENDOR, capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr
    assert (VENDOR / "LICENSE").read_text().startswith("The MIT License")


async def test_top_reasons_come_from_the_count_view_and_are_checked() -> None:
    asked: list[Mapping[str, str]] = []

    async def counts(params: Mapping[str, str], token: str | None = None) -> dict[str, Any]:
        asked.append(params)
        return {"reasons": [{"type": "Warning", "reason": "BackOff", "count": 3}], "partial": []}

    core = Explorer(ExplorerSettings(), Fake(), "k8s-event-*", counts)
    reply = await core.api("top", {"window": "1m", "namespace": "demo"})
    assert reply.status == 200 and json.loads(reply.body)["reasons"][0]["reason"] == "BackOff"
    assert asked == [{"window": "1m", "namespace": "demo", "top": "10"}]
    assert (await core.api("top", {"window": "1d"})).status == 400
    assert (await core.api("top", {"type": "Error"})).status == 400

    async def down(params: Mapping[str, str], token: str | None = None) -> dict[str, Any]:
        raise ConnectionError("refused")

    broken = await Explorer(ExplorerSettings(), Fake(), "k8s-event-*", down).api("top", {})
    assert broken.status == 503 and json.loads(broken.body)["state"] == "unreachable"


def test_install_skips_when_disabled() -> None:
    from streams.explorer.web import install

    assert install(object(), Settings.from_env({"K8SEV_EXPLORER": "false"}), Fake()) is None  # type: ignore[arg-type]
