"""K8SEV_EXPLORER_AUTH=kubernetes on the real API server: ServiceAccount tokens, Roles and RoleBindings.

ServiceAccounts A (a Role with list events in team-a), B (team-b, and default, where the Node events
are kept), C (cluster-wide ``view``), N (no rights) and D (team-a, its binding removed during the
test). Real events in team-a, team-b and about a Node reach the archive through a real worker; each
person's JSON API answers are compared with what they may read.

Only the servers this needs are started (Kafka, Elasticsearch, the API server with etcd, and the
controller-manager, which fills in the aggregated ``view`` ClusterRole).
"""

from __future__ import annotations

import base64
import json
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from kubernetes import client, config
from kubernetes.client.exceptions import ApiException
from playwright.sync_api import Browser, Page, sync_playwright

from devstack import scratch, transient, wait
from devstack import stack as devstack
from devstack.worker import Worker, unique_name, worker_env
from tests.deploy.rbac import service_account_token
from tests.e2e.helpers import create_event, now_rfc3339
from tests.fixtures.worker import TEST_SETTINGS

pytestmark = [pytest.mark.stack, pytest.mark.e2e]

# The controller-manager aggregates the built-in `view` ClusterRole's rules (C's right).
SERVERS = ("kafka", "elasticsearch", "kube-apiserver", "kube-controller-manager")
TTL = 2.0
REASON = "RbacProbe"
CHROMIUM = "/usr/bin/chromium"


@dataclass
class Cluster:
    worker: Worker
    core: client.CoreV1Api
    rbac: client.RbacAuthorizationV1Api
    team_a: str
    team_b: str
    node: str
    tokens_namespace: str
    tokens: dict[str, str] = field(default_factory=dict)

    def api(self, what: str, token: str | None, **params: str) -> tuple[int, Any]:
        url = f"{self.worker.url}/ui/api/{what}?{urllib.parse.urlencode(params)}"
        request = urllib.request.Request(url)
        if token is not None:
            request.add_header("Authorization", f"Bearer {token}")
        try:
            with urllib.request.urlopen(request, timeout=30) as resp:
                return int(resp.status), json.loads(resp.read())
        except urllib.error.HTTPError as exc:
            return exc.code, json.loads(exc.read())

    def rows(self, who: str, **params: str) -> list[dict[str, Any]]:
        status, body = self.api("search", self.tokens[who], range="1h", reason=REASON, size="500", **params)
        assert status == 200, body
        return list(body["rows"])


def list_events_role(rbac: client.RbacAuthorizationV1Api, namespace: str, account: str, accounts_ns: str) -> None:
    """What docs/explorer.md tells an operator to grant a team: list on core events in its namespace."""
    role = {
        "metadata": {"name": "eventlog-reader"},
        "rules": [{"apiGroups": [""], "resources": ["events"], "verbs": ["list"]}],
    }
    with_conflict_ok(lambda: rbac.create_namespaced_role(namespace, role))
    binding = {
        "metadata": {"name": f"eventlog-reader-{account}"},
        "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": "eventlog-reader"},
        "subjects": [{"kind": "ServiceAccount", "name": account, "namespace": accounts_ns}],
    }
    rbac.create_namespaced_role_binding(namespace, binding)


def with_conflict_ok(call: Any) -> None:
    with_status_ok(409, call)


def with_status_ok(status: int, call: Any) -> None:
    try:
        call()
    except ApiException as exc:
        if exc.status != status:
            raise


@pytest.fixture(scope="module")
def servers() -> Iterator[dict[str, str]]:
    chosen = devstack.select(SERVERS)
    already = {name for name, state, _ in devstack.status(chosen) if state.startswith("ready")}
    devstack.up(chosen)
    yield devstack.env(chosen)
    devstack.down([s for s in chosen if s.name not in already])


@pytest.fixture(scope="module")
def cluster(servers: dict[str, str], tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    admin = config.new_client_from_config(config_file=servers["KUBECONFIG"])
    core, rbac = client.CoreV1Api(admin), client.RbacAuthorizationV1Api(admin)
    name = unique_name("rbac")
    team_a, team_b, accounts = f"{name}-team-a", f"{name}-team-b", f"{name}-people"
    for namespace in (team_a, team_b, accounts):
        core.create_namespace(client.V1Namespace(metadata=client.V1ObjectMeta(name=namespace)))
    view = f"{name}-c-view"

    def view_lists_events() -> bool:
        rules = rbac.read_cluster_role("view").rules or []
        return any("events" in (r.resources or []) and "list" in (r.verbs or []) for r in rules)

    wait.until("the view ClusterRole aggregated", view_lists_events, timeout=60)
    try:
        for account in ("a", "b", "c", "d", "n"):
            core.create_namespaced_service_account(accounts, {"metadata": {"name": account}})
        list_events_role(rbac, team_a, "a", accounts)
        list_events_role(rbac, team_b, "b", accounts)
        list_events_role(rbac, "default", "b", accounts)  # where the Node events are: still not theirs
        list_events_role(rbac, team_a, "d", accounts)
        rbac.create_cluster_role_binding(
            {
                "metadata": {"name": view},
                "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": "view"},
                "subjects": [{"kind": "ServiceAccount", "name": "c", "namespace": accounts}],
            }
        )
        tokens = {account: service_account_token(core, account, accounts) for account in ("a", "b", "c", "d", "n")}
        tmp = tmp_path_factory.mktemp("rbac")
        settings = {**TEST_SETTINGS, "K8SEV_EXPLORER_AUTH": "kubernetes", "K8SEV_EXPLORER_REVIEW_TTL": f"{TTL}s"}
        worker = Worker(env=worker_env(servers, data_dir=tmp / name, name=name, **settings), log=tmp / "worker.log")
        worker.start()
        try:
            worker.wait_ready()
            node = f"{name}-node"
            create_event(core, team_a, "in-a", reason=REASON, message="about team a")
            create_event(core, team_b, "in-b", reason=REASON, message="about team b")
            stamp = now_rfc3339()
            node_event = {
                "metadata": {"name": f"{node}.probe", "namespace": "default"},
                "involvedObject": {"kind": "Node", "name": node, "apiVersion": "v1"},
                "reason": REASON,
                "message": "about a node",
                "type": "Normal",
                "firstTimestamp": stamp,
                "lastTimestamp": stamp,
                "source": {"component": "e2e-test"},
            }
            core.create_namespaced_event("default", node_event)
            found = Cluster(worker, core, rbac, team_a, team_b, node, accounts, tokens)

            def archived() -> bool:
                # This module's three events, not just any three: a worker watching the whole cluster
                # also archives the probes an earlier, interrupted run left in its namespaces.
                try:
                    rows = found.rows("c")
                except (AssertionError, OSError):
                    return False
                mine = {(r["namespace"], r["name"]) for r in rows}
                return {(team_a, "in-a-pod"), (team_b, "in-b-pod")} <= mine and any(
                    r["kind"] == "Node" and r["name"] == node for r in rows
                )

            wait.until("the three events in the archive", archived, timeout=120, not_yet=transient.http)
            yield found
        finally:
            worker.stop()
            # drop_app also tries the engines this module did not start: their addresses suffice.
            scratch.drop_app({**devstack.env(devstack.all_servers()), **servers}, name)
    finally:
        for namespace in (team_a, team_b, accounts):
            core.delete_namespace(namespace)
        # The Node event lives in default, which no namespace deletion takes along.
        with_status_ok(404, lambda: core.delete_namespaced_event(f"{name}-node.probe", "default"))
        # The namespaces took their Roles with them; default keeps its own until removed here.
        with_status_ok(404, lambda: rbac.delete_namespaced_role_binding("eventlog-reader-b", "default"))
        with_status_ok(404, lambda: rbac.delete_namespaced_role("eventlog-reader", "default"))
        rbac.delete_cluster_role_binding(view)
        admin.close()


def namespaces(rows: list[dict[str, Any]]) -> set[str]:
    return {r["namespace"] for r in rows}


def test_a_sees_only_team_a(cluster: Cluster) -> None:
    rows = cluster.rows("a")
    assert rows and namespaces(rows) == {cluster.team_a}
    # Without any filter too: nothing of another namespace, whatever the archive holds.
    status, body = cluster.api("search", cluster.tokens["a"], range="1h", size="500")
    assert status == 200 and namespaces(body["rows"]) == {cluster.team_a}
    status, histogram = cluster.api("histogram", cluster.tokens["a"], range="1h")
    assert status == 200 and sum(histogram["normal"]) + sum(histogram["warning"]) == body["total"]
    status, timeline = cluster.api("timeline", cluster.tokens["a"], kind="Pod", name="in-b-pod")
    assert status == 200 and timeline["rows"] == [], "team b's pod has no timeline for A"


def test_a_asking_for_team_b_is_403_naming_it(cluster: Cluster) -> None:
    status, body = cluster.api("search", cluster.tokens["a"], namespace=cluster.team_b)
    assert status == 403 and cluster.team_b in body["error"] and body["state"] == "forbidden"
    status, body = cluster.api("search", cluster.tokens["a"], namespace=cluster.team_a, reason=REASON)
    assert status == 200 and body["total"] >= 1


def test_cluster_scoped_events_need_cluster_wide_rights(cluster: Cluster) -> None:
    everything = cluster.rows("c")
    assert {cluster.team_a, cluster.team_b} <= namespaces(everything)
    assert any(r["kind"] == "Node" and r["name"] == cluster.node for r in everything)
    # B may list events in default, where the Node event is kept, but a Node is no namespace's.
    b_rows = cluster.rows("b")
    assert namespaces(b_rows) == {cluster.team_b}
    assert not any(r["kind"] == "Node" for r in b_rows)


def test_no_token_and_a_forged_token_are_401(cluster: Cluster) -> None:
    status, body = cluster.api("search", None)
    assert status == 401 and "kubectl create token" in body["error"]
    header, payload, signature = cluster.tokens["c"].split(".")
    claims = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
    claims["sub"] = "system:serviceaccount:kube-system:admin"
    forged_payload = base64.urlsafe_b64encode(json.dumps(claims).encode()).decode().rstrip("=")
    for forged in (f"{header}.{forged_payload}.{signature}", f"{header}.{payload}.{signature[:-4]}AAAA", "junk"):
        status, body = cluster.api("search", forged)
        assert status == 401 and "does not accept" in body["error"]


def test_a_token_without_rights_gets_an_empty_answer_saying_why(cluster: Cluster) -> None:
    status, body = cluster.api("search", cluster.tokens["n"], range="1h")
    assert status == 200 and body["rows"] == [] and "may list events in no namespace" in body["notice"]


def test_removing_the_rolebinding_takes_effect_within_the_ttl(cluster: Cluster) -> None:
    assert namespaces(cluster.rows("d")) == {cluster.team_a}
    cluster.rbac.delete_namespaced_role_binding("eventlog-reader-d", cluster.team_a)
    removed = time.monotonic()

    def revoked() -> bool:
        status, body = cluster.api("search", cluster.tokens["d"], range="1h")
        return status == 200 and body["rows"] == [] and "notice" in body

    wait.until("D's access gone", revoked, timeout=TTL + 10)
    took = time.monotonic() - removed
    # The TTL, plus the API server's own RBAC cache catching up (its informer, well under a second).
    assert took < TTL + 5, took
    status, body = cluster.api("search", cluster.tokens["d"], namespace=cluster.team_a)
    assert status == 403 and cluster.team_a in body["error"]


# ---------------------------------------------------------------- the page, in Chromium


@pytest.fixture
def browser() -> Iterator[Browser]:
    assert Path(CHROMIUM).exists(), "Debian's chromium is missing: scripts/dev setup installs it"
    with sync_playwright() as pw:
        launched = pw.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"])
        yield launched
        launched.close()


def signed_in(browser: Browser, token: str) -> Page:
    """A tab whose browser answers the login prompt with the token as password (what a person types)."""
    return browser.new_context(http_credentials={"username": "me", "password": token}).new_page()


def settled(tab: Page) -> None:
    # Handed over as a function: Playwright evaluates a bare expression with eval, which the CSP forbids.
    tab.wait_for_function("() => ['ready','empty'].includes(document.getElementById('results').dataset.state)")


def test_the_page_shows_a_only_team_a_and_a_person_without_rights_why(cluster: Cluster, browser: Browser) -> None:
    anonymous = browser.new_context()
    refused = anonymous.request.get(cluster.worker.url + "/ui/")
    assert refused.status == 401 and "kubectl create token" in refused.text()
    assert refused.headers["www-authenticate"].startswith("Basic")
    anonymous.close()

    query = f"/ui/?{urllib.parse.urlencode({'range': '1h', 'reason': REASON})}"
    tab = signed_in(browser, cluster.tokens["a"])
    tab.goto(cluster.worker.url + query)
    settled(tab)
    shown = set(tab.locator("#results td.obj .ns").all_inner_texts())
    assert shown == {f"{cluster.team_a}/"}
    tab.context.close()

    tab = signed_in(browser, cluster.tokens["c"])
    tab.goto(cluster.worker.url + query)
    settled(tab)
    assert {f"{cluster.team_a}/", f"{cluster.team_b}/"} <= set(tab.locator("#results td.obj .ns").all_inner_texts())
    tab.context.close()

    tab = signed_in(browser, cluster.tokens["n"])
    tab.goto(cluster.worker.url + query)
    tab.wait_for_function("() => document.getElementById('results').dataset.state === 'empty'")
    assert "may list events in no namespace" in tab.locator("#status").inner_text()
    tab.context.close()


# ---------------------------------------------------------------- cost


@pytest.mark.slow
def test_load_time_with_kubernetes_auth(
    cluster: Cluster, servers: dict[str, str], browser: Browser, tmp_path: Path
) -> None:
    """The page over 100,000 documents with no auth, and with kubernetes auth for a cluster-wide reader
    (C) and a one-namespace reader (A, of 20 namespaces), reviews cached (TTL 30 s) or not (TTL 1 ms).
    Prints COST lines; asserts only that each view loads."""
    import statistics

    from elasticsearch import Elasticsearch

    from tests.e2e.archive import bulk_load, synthetic_documents
    from tests.e2e.test_explorer import put_template

    prefix = unique_name("cost")
    es = Elasticsearch(servers["DEVSTACK_ELASTICSEARCH_URL"], request_timeout=120)
    made_team_a = False
    try:
        cluster.core.create_namespace(client.V1Namespace(metadata=client.V1ObjectMeta(name="team-a")))
        made_team_a = True
    except ApiException as exc:
        if exc.status != 409:
            raise
    try:
        list_events_role(cluster.rbac, "team-a", "a", cluster.tokens_namespace)
        put_template(es, prefix)
        docs = synthetic_documents(100_000, unique_name("load"), timedelta(hours=23), seed=11)
        assert bulk_load(es, prefix, docs) == 100_000
        es.indices.forcemerge(index=f"{prefix}-*", max_num_segments=1)
        cases = [("none", "", None), ("kubernetes ttl=30s", "30s", "c"), ("kubernetes ttl=1ms", "0.001s", "c")]
        cases += [("kubernetes ttl=30s", "30s", "a"), ("kubernetes ttl=1ms", "0.001s", "a")]
        for label, ttl, who in cases:
            overrides = {**TEST_SETTINGS, "K8SEV_INDEX_PREFIX": prefix, "K8SEV_INGEST": "false"}
            if who is not None:
                overrides |= {"K8SEV_EXPLORER_AUTH": "kubernetes", "K8SEV_EXPLORER_REVIEW_TTL": ttl}
            name = unique_name("w")
            env = worker_env(servers, data_dir=tmp_path / name, name=name, **overrides)
            worker = Worker(env=env, log=tmp_path / f"{name}.log")
            worker.start()
            try:
                worker.wait_ready()
                context = browser.new_context(
                    viewport={"width": 1400, "height": 900},
                    http_credentials={"username": "me", "password": cluster.tokens[who]} if who else None,
                )
                tab = context.new_page()
                results_ms, histogram_ms = [], []
                for _ in range(5):
                    tab.goto(f"{worker.url}/ui/?range=24h")
                    tab.wait_for_function(
                        "() => ['ready','empty'].includes(document.getElementById('results').dataset.state)"
                        " && document.getElementById('histogram').dataset.state === 'ready'"
                    )
                    assert tab.locator("#summary").inner_text().split()[0] != "0"
                    marks = tab.evaluate(
                        "['explorer:results', 'explorer:histogram']"
                        ".map(n => performance.getEntriesByName(n)[0].startTime)"
                    )
                    results_ms.append(marks[0])
                    histogram_ms.append(marks[1])
                context.close()
            finally:
                worker.stop()
                scratch.drop_app({**devstack.env(devstack.all_servers()), **servers}, name)
            print(
                f"\nCOST auth={label} reader={who or '-'} first_results_ms(first,median of 5)="
                f"{results_ms[0]:.0f},{statistics.median(results_ms):.0f} "
                f"histogram_ms={histogram_ms[0]:.0f},{statistics.median(histogram_ms):.0f}"
            )
            assert statistics.median(results_ms) < 5000 and statistics.median(histogram_ms) < 5000
    finally:
        es.close()
        scratch.drop_app({**devstack.env(devstack.all_servers()), **servers}, prefix)
        if made_team_a:
            cluster.core.delete_namespace("team-a")
        else:
            with_status_ok(404, lambda: cluster.rbac.delete_namespaced_role_binding("eventlog-reader-a", "team-a"))
