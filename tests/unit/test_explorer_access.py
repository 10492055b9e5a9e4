"""K8SEV_EXPLORER_AUTH=kubernetes without an API server: the gate's decisions, its cache, and the answers.

The reviewer is a fake (a table of who may list events where); the real TokenReviews and
SubjectAccessReviews are in tests/e2e/test_explorer_rbac.py.
"""

from __future__ import annotations

import asyncio
import base64
import json
import threading
import time
from collections.abc import Mapping
from typing import Any

import pytest

from streams.config.settings import ExplorerSettings, Settings, SettingsError
from streams.explorer import query
from streams.explorer.access import Gate
from streams.explorer.handlers import Explorer
from streams.kube.api import Disconnected, Identity

ALICE = Identity("system:serviceaccount:team-a:a", "uid-a", ("system:serviceaccounts",))
ROOT = Identity("system:serviceaccount:ops:c", "uid-c")
NOBODY = Identity("system:serviceaccount:x:n")
TOKENS = {"token-a": ALICE, "token-c": ROOT, "token-n": NOBODY}
NAMESPACES = ["default", "team-a", "team-b"]


class Reviewer:
    """Who may list events where, by (user, API group, namespace); "" namespace: cluster-wide."""

    def __init__(self) -> None:
        self.rules = {(ALICE.username, "", "team-a"), (ROOT.username, "events.k8s.io", "")}
        self.calls: list[tuple[str, ...]] = []
        self.threads: set[str] = set()
        self.error: Exception | None = None

    def token_review(self, token: str) -> Identity | None:
        self.threads.add(threading.current_thread().name)
        self.calls.append(("token",))
        if self.error:
            raise self.error
        return TOKENS.get(token)

    def may(self, who: Identity, verb: str, group: str, resource: str, namespace: str) -> bool:
        self.threads.add(threading.current_thread().name)
        assert (verb, resource) == ("list", "events")
        self.calls.append((who.username, group, namespace))
        if self.error:
            raise self.error
        return (who.username, group, namespace) in self.rules


class Clock:
    now = 0.0

    def __call__(self) -> float:
        return self.now


class Search:
    def __init__(self) -> None:
        self.bodies: list[Mapping[str, Any]] = []

    async def search(self, index: str, body: Mapping[str, Any]) -> dict[str, Any]:
        self.bodies.append(body)
        if "aggs" in body and "namespaces" in body["aggs"]:
            return {"aggregations": {"namespaces": {"buckets": [{"key": ns} for ns in NAMESPACES]}}}
        return {"hits": {"hits": [], "total": {"value": 0, "relation": "eq"}}}


COUNTS = {
    "team-a/Warning/BackOff": 5,
    "team-b/Warning/BackOff": 7,
    "team-b/Normal/Pulled": 9,
    "team-a/Normal/Pulled": 1,
}


async def counts(params: Mapping[str, str], token: str | None = None) -> dict[str, Any]:
    assert params.get("raw") == "1", "a limited person's top reasons are counted from the raw tables"
    # As the worker's view filters: by type and namespace when asked.
    kept = {
        key: n
        for key, n in COUNTS.items()
        if params.get("type", key.split("/")[1]) == key.split("/")[1]
        and params.get("namespace", key.split("/")[0]) == key.split("/")[0]
    }
    return {"counts": kept, "partial": []}


def setup(ttl: float = 30) -> tuple[Explorer, Reviewer, Search, Clock]:
    reviewer, search, clock = Reviewer(), Search(), Clock()
    gate = Gate(reviewer, ttl=ttl, size=100, timer=clock)
    explorer = Explorer(ExplorerSettings(auth="kubernetes"), search, "k8s-event-*", counts, gate=gate)
    return explorer, reviewer, search, clock


async def call(explorer: Explorer, token: str | None, what: str = "search", **params: str) -> tuple[int, Any]:
    admitted = await explorer.admit(f"Bearer {token}" if token else None, True)
    assert admitted is not None, "kubernetes mode admits people only, never 'anyone'"
    reply = await explorer.api(what, params, admitted) if isinstance(admitted, Identity) else admitted
    return reply.status, json.loads(reply.body)


def namespaces_asked(search: Search) -> list[Any]:
    """The namespace clauses of the last event query sent to the engine."""
    body = search.bodies[-1]
    return [c for c in body["query"]["bool"]["filter"] if "terms" in c and "namespace" in next(iter(c["terms"]))]


# ---------------------------------------------------------------- who gets in


async def test_no_token_is_401_and_says_what_to_paste() -> None:
    explorer, reviewer, _, _ = setup()
    reply = await explorer.admit(None, True)
    assert not isinstance(reply, Identity) and reply is not None
    assert reply.status == 401 and "kubectl create token" in json.loads(reply.body)["error"]
    assert reply.headers["WWW-Authenticate"].startswith("Basic")
    assert reviewer.calls == []


async def test_a_forged_token_is_401_and_the_answer_is_cached() -> None:
    explorer, reviewer, _, _ = setup()
    for _ in range(3):
        status, body = await call(explorer, "forged")
        assert status == 401 and "does not accept this token" in body["error"]
    assert reviewer.calls == [("token",)]


async def test_the_browser_prompt_carries_the_token_as_password() -> None:
    explorer, _, _, _ = setup()
    header = "Basic " + base64.b64encode(b"anyone:token-a").decode()
    assert await explorer.admit(header, False) == ALICE


async def test_the_api_server_down_is_503_not_a_refusal() -> None:
    explorer, reviewer, _, _ = setup()
    reviewer.error = Disconnected("connection refused")
    status, body = await call(explorer, "token-a")
    assert status == 503 and body["state"] == "unreachable"


# ---------------------------------------------------------------- what they see


async def test_a_namespace_role_sees_only_its_namespace_and_the_filter_is_in_the_query() -> None:
    explorer, reviewer, search, _ = setup()
    status, _ = await call(explorer, "token-a", range="1h")
    assert status == 200
    # Both the event's namespace and its object's: a Node's events (object without namespace) stay out.
    assert namespaces_asked(search) == [
        {"terms": {"metadata.namespace": ["team-a"]}},
        {"terms": {"involvedObject.namespace": ["team-a"]}},
    ]
    # Cluster-wide asked first; each namespace by core, then events.k8s.io when core says no.
    assert reviewer.calls[:3] == [("token",), (ALICE.username, "", ""), (ALICE.username, "events.k8s.io", "")]
    assert reviewer.threads and "MainThread" not in reviewer.threads


async def test_histogram_and_timeline_are_filtered_alike() -> None:
    explorer, _, search, _ = setup()
    assert (await call(explorer, "token-a", "histogram", range="1h"))[0] == 200
    assert {"terms": {"metadata.namespace": ["team-a"]}} in search.bodies[-1]["query"]["bool"]["filter"]
    assert (await call(explorer, "token-a", "timeline", kind="Pod", name="web-1", owners="1"))[0] == 200
    assert {"terms": {"involvedObject.namespace": ["team-a"]}} in search.bodies[-1]["query"]["bool"]["filter"]


async def test_a_forbidden_namespace_is_403_naming_it() -> None:
    explorer, _, search, _ = setup()
    status, body = await call(explorer, "token-a", namespace="team-a,team-b")
    assert status == 403 and body["state"] == "forbidden" and "'team-b'" in body["error"]
    assert ALICE.username in body["error"]
    assert not any("query" in b for b in search.bodies), "nothing is searched for a refused request"
    assert (await call(explorer, "token-a", namespace="team-a"))[0] == 200


async def test_cluster_wide_sees_everything_with_no_namespace_filter() -> None:
    explorer, reviewer, search, _ = setup()
    status, _ = await call(explorer, "token-c", range="1h")
    assert status == 200 and namespaces_asked(search) == []
    # events.k8s.io's right is as good as core's: the same objects.
    assert (ROOT.username, "events.k8s.io", "") in reviewer.calls


async def test_no_rights_is_an_empty_answer_with_the_reason() -> None:
    explorer, _, search, _ = setup()
    for what in ("search", "histogram", "timeline", "top"):
        params = {"kind": "Pod", "name": "p"} if what == "timeline" else {}
        status, body = await call(explorer, "token-n", what, **params)
        assert status == 200 and "may list events in no namespace" in body["notice"]
    assert all("query" not in b for b in search.bodies), "no event query for someone who may read none"


async def test_top_reasons_count_only_the_allowed_namespaces() -> None:
    explorer, _, _, _ = setup()
    status, body = await call(explorer, "token-a", "top", window="1h", type="Warning")
    assert status == 200
    assert body["reasons"] == [{"type": "Warning", "reason": "BackOff", "count": 5}]
    status, body = await call(explorer, "token-a", "top", window="1h")
    assert [(r["reason"], r["count"]) for r in body["reasons"]] == [("BackOff", 5), ("Pulled", 1)]


# ---------------------------------------------------------------- the cache


async def test_reviews_are_cached_for_the_ttl_then_asked_again() -> None:
    explorer, reviewer, _, clock = setup(ttl=5)
    await call(explorer, "token-a", namespace="team-a")
    first = len(reviewer.calls)
    await call(explorer, "token-a", namespace="team-a")
    assert len(reviewer.calls) == first, "within the TTL nothing is asked again"
    reviewer.rules.discard((ALICE.username, "", "team-a"))  # the RoleBinding removed
    assert (await call(explorer, "token-a", namespace="team-a"))[0] == 200
    clock.now += 6
    assert (await call(explorer, "token-a", namespace="team-a"))[0] == 403
    assert len(reviewer.calls) > first


async def test_the_cache_is_bounded() -> None:
    reviewer = Reviewer()
    gate = Gate(reviewer, ttl=30, size=10, timer=Clock())
    for i in range(50):
        await gate.identify(f"token-{i}")
    assert len(gate._tokens) <= 10
    # Keyed by digest: no token is kept.
    assert not any(key[1].startswith("token") for key in gate._tokens)


async def test_requests_arriving_together_share_each_review() -> None:
    explorer, reviewer, _, _ = setup()
    slow = reviewer.may

    def may(*args: Any) -> bool:
        time.sleep(0.05)  # the API server's round trip, so the three requests overlap
        return slow(*args)

    reviewer.may = may  # type: ignore[method-assign,assignment]
    answers = await asyncio.gather(*(call(explorer, "token-a", what) for what in ("search", "histogram", "top")))
    assert [status for status, _ in answers] == [200, 200, 200]
    # One TokenReview, two cluster-wide reviews, then core and events.k8s.io for team-b and default,
    # core alone for team-a: what one request costs, not three times that.
    assert len(reviewer.calls) == 1 + 2 + 2 + 2 + 1


# ---------------------------------------------------------------- settings


def test_auth_names_and_their_checks() -> None:
    assert Settings.from_env({}).explorer.mode == "none"
    assert Settings.from_env({"K8SEV_EXPLORER_TOKEN": "t"}).explorer.mode == "token"
    assert Settings.from_env({"K8SEV_EXPLORER_USERNAME": "u", "K8SEV_EXPLORER_PASSWORD": "p"}).explorer.mode == "basic"
    kube = Settings.from_env({"K8SEV_EXPLORER_AUTH": "Kubernetes", "K8SEV_EXPLORER_REVIEW_TTL": "2s"}).explorer
    assert (kube.mode, kube.review_ttl, kube.protected) == ("kubernetes", 2.0, True)
    with pytest.raises(SettingsError) as caught:
        Settings.from_env({"K8SEV_EXPLORER_AUTH": "token", "K8SEV_EXPLORER_REVIEW_TTL": "1h"})
    problems = "\n".join(caught.value.problems)
    assert "EXPLORER_AUTH=token needs" in problems and "EXPLORER_REVIEW_TTL='1h'" in problems
    with pytest.raises(SettingsError, match="ignores"):
        Settings.from_env({"K8SEV_EXPLORER_AUTH": "kubernetes", "K8SEV_EXPLORER_TOKEN": "t"})
    with pytest.raises(SettingsError, match="kubernetes, token, basic, none"):
        Settings.from_env({"K8SEV_EXPLORER_AUTH": "ldap"})


def test_the_archive_names_its_namespaces_for_the_gate() -> None:
    body = query.namespaces_body(10)
    assert body["size"] == 0 and body["aggs"]["namespaces"]["terms"]["field"] == "metadata.namespace"
    answer = {"aggregations": {"namespaces": {"buckets": [{"key": "a", "doc_count": 1}, {"key": "", "doc_count": 2}]}}}
    assert query.namespaces_answer(answer) == ["a"]


# ---------------------------------------------------------------- the count views (/counts/*)

PRESENT = ["", "team-a", "team-b"]  # "": a Node's events, counted without a namespace


async def test_the_count_views_want_a_token_and_check_it() -> None:
    explorer, reviewer, _, _ = setup()
    no_token = await explorer.count_access(None, None, "reason", None, PRESENT)
    assert no_token.refusal is not None and no_token.refusal.status == 401
    assert "WWW-Authenticate" in no_token.refusal.headers and not reviewer.calls
    forged = await explorer.count_access("Bearer forged", None, "reason", None, PRESENT)
    assert forged.refusal is not None and forged.refusal.status == 401
    # The service proxy's way in: X-Eventlog-Token, as for the JSON API.
    proxied = await explorer.count_access(None, "token-a", "reason", None, PRESENT)
    assert proxied.refusal is None and proxied.token == "token-a"


async def test_a_namespace_role_counts_only_its_namespaces_never_cluster_scoped_ones() -> None:
    explorer, reviewer, search, _ = setup()
    admitted = await explorer.count_access("Bearer token-a", None, "reason", None, PRESENT)
    assert admitted.refusal is None and admitted.allowed == frozenset({"team-a"})
    assert admitted.token == "token-a", "handed on to the peers, which check it themselves"
    # The namespaces reviewed are those the table holds: no search engine is asked.
    assert not search.bodies
    assert {c[2] for c in reviewer.calls if c != ("token",)} == {"", "team-a", "team-b"}


async def test_a_count_namespace_not_allowed_is_403_naming_it() -> None:
    explorer, _, _, _ = setup()
    refused = await explorer.count_access("Bearer token-a", None, "reason", "team-b", PRESENT)
    assert refused.refusal is not None and refused.refusal.status == 403
    body = json.loads(refused.refusal.body)
    assert body["state"] == "forbidden" and "'team-b'" in body["error"] and ALICE.username in body["error"]
    allowed = await explorer.count_access("Bearer token-a", None, "reason", "team-a", PRESENT)
    assert allowed.refusal is None and allowed.allowed == frozenset({"team-a"})


async def test_cluster_wide_counts_everything_and_the_kinds() -> None:
    explorer, _, _, _ = setup()
    for family in ("reason", "kind"):
        admitted = await explorer.count_access("Bearer token-c", None, family, None, PRESENT)
        assert admitted.refusal is None and admitted.allowed is None


async def test_counts_by_kind_need_cluster_wide_rights() -> None:
    explorer, _, _, _ = setup()
    refused = await explorer.count_access("Bearer token-a", None, "kind", None, ())
    assert refused.refusal is not None and refused.refusal.status == 403
    assert "cluster-wide" in json.loads(refused.refusal.body)["error"]


async def test_no_rights_counts_nothing_and_says_why() -> None:
    explorer, _, _, _ = setup()
    admitted = await explorer.count_access("Bearer token-n", None, "reason", None, PRESENT)
    assert admitted.refusal is None and admitted.allowed == frozenset()
    assert "may list events in no namespace with counted events" in admitted.note


async def test_count_reviews_share_the_json_apis_cache() -> None:
    explorer, reviewer, _, _ = setup()
    await call(explorer, "token-a", "search", namespace="team-a")
    sent = len(reviewer.calls)
    admitted = await explorer.count_access("Bearer token-a", None, "reason", "team-a", PRESENT)
    assert admitted.allowed == frozenset({"team-a"}) and len(reviewer.calls) == sent


async def test_the_api_server_down_is_503_for_the_count_views() -> None:
    explorer, reviewer, _, _ = setup()
    await explorer.admit("Bearer token-a", True)  # the token's review cached; the access reviews then fail
    reviewer.error = Disconnected("gone")
    down = await explorer.count_access("Bearer token-a", None, "reason", None, PRESENT)
    assert down.refusal is not None and down.refusal.status == 503


async def test_top_reasons_hand_the_token_on_to_the_count_view() -> None:
    tokens: list[str | None] = []

    async def view(params: Mapping[str, str], token: str | None = None) -> dict[str, Any]:
        tokens.append(token)
        return await counts(params)

    reviewer = Reviewer()
    gate = Gate(reviewer, ttl=30, size=100)
    explorer = Explorer(ExplorerSettings(auth="kubernetes"), Search(), "k8s-event-*", view, gate=gate)
    who = await explorer.admit("Bearer token-a", True)
    assert isinstance(who, Identity)
    reply = await explorer.api("top", {"window": "1h"}, who, "token-a")
    assert reply.status == 200 and tokens == ["token-a"]


async def test_the_count_guard_exists_in_kubernetes_mode_only_and_reads_both_headers() -> None:
    from streams.explorer.web import count_guard

    assert count_guard(None) is None
    others = [
        ExplorerSettings(auth="none"),
        ExplorerSettings(auth="token", token="t"),
        ExplorerSettings(auth="basic", username="u", password="p"),
    ]
    for settings in others:
        core = Explorer(settings, Search(), "k8s-event-*", counts)
        assert count_guard(core) is None, f"{settings.mode}: the count views stay as they were"
    explorer, _, _, _ = setup()
    guard = count_guard(explorer)
    assert guard is not None
    assert (await guard({}, "reason", None, PRESENT)).refusal is not None
    via_proxy = await guard({"X-Eventlog-Token": "token-a"}, "reason", None, PRESENT)
    assert via_proxy.allowed == frozenset({"team-a"})
    direct = await guard({"Authorization": "Bearer token-c"}, "reason", None, PRESENT)
    assert direct.refusal is None and direct.allowed is None
