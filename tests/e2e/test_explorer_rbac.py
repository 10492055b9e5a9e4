"""K8SEV_EXPLORER_AUTH=kubernetes on the real API server: ServiceAccount tokens, Roles and RoleBindings.

ServiceAccounts A (a Role with list events in team-a), B (team-b, and default, where the Node events
are kept), C (cluster-wide ``view``), N (no rights), D (team-a, its binding removed during the
test) and E (team-a, like A, but without the service proxy's Role). Real events in team-a, team-b and
about a Node reach the archive through a real worker; each person's JSON API answers are compared
with what they may read, and so is ``kubectl eventlog`` run with each one's kubeconfig through the
API server's service proxy (the worker exposed as a Service of the API server: devstack.service_proxy).

Only the servers this needs are started (Kafka, Elasticsearch, the API server with etcd, and the
controller-manager, which fills in the aggregated ``view`` ClusterRole).
"""

from __future__ import annotations

import base64
import json
import os
import subprocess
import sys
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

from devstack import scratch, service_proxy, transient, wait
from devstack import stack as devstack
from devstack.worker import Worker, unique_name, worker_env
from tests.deploy.rbac import admin_cluster, service_account_token, write_token_kubeconfig
from tests.e2e.helpers import create_event, now_rfc3339
from tests.fixtures.worker import TEST_SETTINGS

pytestmark = [pytest.mark.stack, pytest.mark.e2e]

# The controller-manager aggregates the built-in `view` ClusterRole's rules (C's right).
SERVERS = ("kafka", "elasticsearch", "kube-apiserver", "kube-controller-manager")
TTL = 2.0
REASON = "RbacProbe"
CHROMIUM = "/usr/bin/chromium"
# The workers' Service, named as k8s/ names it, in a namespace of the module's own.
SERVICE = "k8s-event-streams"
PROXY_ROLE = "eventlog-proxy"


@dataclass
class Cluster:
    worker: Worker
    core: client.CoreV1Api
    rbac: client.RbacAuthorizationV1Api
    team_a: str
    team_b: str
    node: str
    tokens_namespace: str
    explorer_namespace: str
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


def services_proxy_role(
    rbac: client.RbacAuthorizationV1Api, namespace: str, accounts: list[str], accounts_ns: str
) -> None:
    """What docs/explorer.md tells an operator to grant for `kubectl eventlog`: get on the workers'
    Service's proxy, by the name the request carries (``name:port``)."""
    role = {
        "metadata": {"name": PROXY_ROLE},
        "rules": [
            {
                "apiGroups": [""],
                "resources": ["services/proxy"],
                "resourceNames": [f"{SERVICE}:web"],
                "verbs": ["get"],
            }
        ],
    }
    rbac.create_namespaced_role(namespace, role)
    binding = {
        "metadata": {"name": PROXY_ROLE},
        "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": PROXY_ROLE},
        "subjects": [{"kind": "ServiceAccount", "name": a, "namespace": accounts_ns} for a in accounts],
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
    explorer_ns = f"{name}-explorer"
    for namespace in (team_a, team_b, accounts, explorer_ns):
        core.create_namespace(client.V1Namespace(metadata=client.V1ObjectMeta(name=namespace)))
    view = f"{name}-c-view"

    def view_lists_events() -> bool:
        rules = rbac.read_cluster_role("view").rules or []
        return any("events" in (r.resources or []) and "list" in (r.verbs or []) for r in rules)

    wait.until("the view ClusterRole aggregated", view_lists_events, timeout=60)
    try:
        for account in ("a", "b", "c", "d", "n", "e"):
            core.create_namespaced_service_account(accounts, {"metadata": {"name": account}})
        list_events_role(rbac, team_a, "a", accounts)
        list_events_role(rbac, team_a, "e", accounts)
        # Made now, long before the first `kubectl eventlog`: the API server's RBAC has long seen them.
        services_proxy_role(rbac, explorer_ns, ["a", "c", "n"], accounts)
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
        tokens = {account: service_account_token(core, account, accounts) for account in ("a", "b", "c", "d", "n", "e")}
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
            found = Cluster(worker, core, rbac, team_a, team_b, node, accounts, explorer_ns, tokens)

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
        for namespace in (team_a, team_b, accounts, explorer_ns):
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


# ---------------------------------------------------------------- kubectl eventlog, through the service proxy


@dataclass
class Proxied:
    cluster: Cluster
    servers: dict[str, str]
    kubeconfigs: dict[str, Path]
    address: str

    def eventlog(self, who: str, *argv: str, env: dict[str, str] | None = None) -> tuple[int, str, str]:
        """``kubectl-eventlog`` as ``who``, with only their kubeconfig: no search engine settings at all."""
        bin_dir = Path(sys.executable).parent
        base = {
            "PATH": f"{bin_dir}:{os.environ.get('PATH', '')}",
            "HOME": os.environ.get("HOME", "/root"),
            "KUBECONFIG": str(self.kubeconfigs[who]),
            "K8SEV_EVENTLOG_SERVICE": f"{self.cluster.explorer_namespace}/{SERVICE}",
        }
        done = subprocess.run(
            [str(bin_dir / "kubectl-eventlog"), *argv],
            env={**base, **(env or {})},
            capture_output=True,
            text=True,
            timeout=120,
        )
        return done.returncode, done.stdout, done.stderr

    def items(self, who: str, *argv: str) -> list[dict[str, Any]]:
        code, out, err = self.eventlog(who, "--reason", REASON, "--since", "1h", "-o", "json", *argv)
        assert code == 0, err
        return list(json.loads(out)["items"])


def forged(token: str) -> str:
    """``token`` with its subject changed and the signature kept: what the API server must refuse."""
    header, payload, signature = token.split(".")
    claims = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
    claims["sub"] = "system:serviceaccount:kube-system:admin"
    return f"{header}.{base64.urlsafe_b64encode(json.dumps(claims).encode()).decode().rstrip('=')}.{signature}"


@pytest.fixture(scope="module")
def proxied(cluster: Cluster, servers: dict[str, str], tmp_path_factory: pytest.TempPathFactory) -> Iterator[Proxied]:
    server, ca = admin_cluster(servers["KUBECONFIG"])
    tmp = tmp_path_factory.mktemp("kubeconfigs")
    people = {**cluster.tokens, "forged": forged(cluster.tokens["c"])}
    # Each one's context namespace is team-a: what `kubectl eventlog` without -n asks for.
    kubeconfigs = {
        who: write_token_kubeconfig(tmp / f"{who}.kubeconfig", server, ca, token, cluster.team_a)
        for who, token in people.items()
    }
    namespace = cluster.explorer_namespace
    with service_proxy.expose(cluster.core, namespace, SERVICE, cluster.worker.port) as address:

        def through_the_proxy() -> int:
            # The admin's request, as the command's will go: API server -> Endpoints -> the worker.
            response = cluster.core.connect_get_namespaced_service_proxy_with_path(
                f"{SERVICE}:web", namespace, "readyz", _preload_content=False
            )
            return int(response.status) == 200

        wait.until(
            "the worker through the service proxy", through_the_proxy, timeout=30, not_yet=transient.kube_status(503)
        )
        yield Proxied(cluster, servers, kubeconfigs, address)


def test_eventlog_through_the_proxy_shows_a_only_team_a(proxied: Proxied) -> None:
    cluster = proxied.cluster
    everything = proxied.items("a", "-A")
    assert everything and {d["metadata"]["namespace"] for d in everything} == {cluster.team_a}
    # Without -n: the kubeconfig context's namespace, as kubectl; the table of kubectl events.
    code, out, err = proxied.eventlog("a", "--reason", REASON)
    assert code == 0, err
    header, *rows = out.splitlines()
    assert header.split() == ["LAST", "SEEN", "TYPE", "REASON", "OBJECT", "MESSAGE"]
    assert [r.split()[1:] for r in rows] == [["Normal", REASON, "Pod/in-a-pod", "about", "team", "a"]]
    # Asking for team b: the worker's 403, naming it, in one line.
    code, out, err = proxied.eventlog("a", "-n", cluster.team_b, "--reason", REASON)
    assert code == 1 and out == ""
    assert err.startswith(f"error: the explorer behind {cluster.explorer_namespace}/{SERVICE}:web answered 403:")
    assert f"may not list events in namespace '{cluster.team_b}'" in err and len(err.splitlines()) == 1


def test_eventlog_through_the_proxy_c_sees_all_as_the_engine_shows_it(proxied: Proxied) -> None:
    cluster = proxied.cluster
    everything = proxied.items("c", "-A")
    assert {cluster.team_a, cluster.team_b} <= {d["metadata"]["namespace"] for d in everything}
    node = proxied.items("c", "-A", "--for", f"node/{cluster.node}")
    assert [(d["involvedObject"]["kind"], d["involvedObject"]["name"]) for d in node] == [("Node", cluster.node)]
    # The same documents, in the same order, as an admin reading the engine itself.
    direct = {
        "K8SEV_ES_URL": cluster.worker.env["K8SEV_ES_URL"],
        "K8SEV_INDEX_PREFIX": cluster.worker.index_prefix,
    }
    for argv in (["-A"], ["-A", "--for", f"node/{cluster.node}"], ["-A", "--all-versions"]):
        code, out, err = proxied.eventlog(
            "forged", "--reason", REASON, "--since", "1h", "-o", "yaml", *argv, env=direct
        )
        assert code == 0, err  # the engine's path asks the API server nothing: the forged kubeconfig is unused
        code, through, err = proxied.eventlog("c", "--reason", REASON, "--since", "1h", "-o", "yaml", *argv)
        assert code == 0, err
        assert through == out


def test_eventlog_watch_through_the_proxy_follows_only_team_a(proxied: Proxied) -> None:
    import threading

    cluster = proxied.cluster
    bin_dir = Path(sys.executable).parent
    env = {
        "PATH": f"{bin_dir}:{os.environ.get('PATH', '')}",
        "HOME": os.environ.get("HOME", "/root"),
        "KUBECONFIG": str(proxied.kubeconfigs["a"]),
        "K8SEV_EVENTLOG_SERVICE": f"{cluster.explorer_namespace}/{SERVICE}:web",
    }
    argv = [str(bin_dir / "kubectl-eventlog"), "-A", "--reason", "RbacWatched", "--watch", "-o", "json"]
    proc = subprocess.Popen(argv, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    lines: list[str] = []
    errors: list[str] = []
    for stream, sink in ((proc.stdout, lines), (proc.stderr, errors)):
        assert stream is not None
        threading.Thread(target=lambda s=stream, into=sink: into.extend(iter(s.readline, "")), daemon=True).start()
    try:
        wait.until("the initial listing", lambda: any(e.startswith("watching") for e in errors), timeout=60)
        # Team b's first, and archived, before team a's: the poll that prints team a's has seen it.
        create_event(cluster.core, cluster.team_b, "watched-b", reason="RbacWatched", message="b")
        wait.until(
            "team b's event in the archive",
            lambda: cluster.api("search", cluster.tokens["c"], range="1h", reason="RbacWatched")[1]["total"],
            timeout=60,
            not_yet=transient.http,
        )
        create_event(cluster.core, cluster.team_a, "watched-a", reason="RbacWatched", message="a")

        def printed() -> list[dict[str, Any]]:
            return [json.loads(line) for line in list(lines) if line.startswith("{")]

        wait.until("team a's event on the watch", lambda: any(d["message"] == "a" for d in printed()), timeout=60)
        assert {d["metadata"]["namespace"] for d in printed()} == {cluster.team_a}, errors
    finally:
        proc.terminate()
        proc.wait(10)


def test_eventlog_for_takes_a_crds_plural_by_discovery(proxied: Proxied, servers: dict[str, str]) -> None:
    """``--for widgetparts.<group>/w1`` as kubectl events takes it: the plural (or singular, or short
    name) becomes the kind WidgetPart by the API server's discovery, which no capitalising could guess."""
    cluster = proxied.cluster
    group = f"{cluster.explorer_namespace}.example.com"
    crd = {
        "apiVersion": "apiextensions.k8s.io/v1",
        "kind": "CustomResourceDefinition",
        "metadata": {"name": f"widgetparts.{group}"},
        "spec": {
            "group": group,
            "scope": "Namespaced",
            "names": {"plural": "widgetparts", "singular": "widgetpart", "kind": "WidgetPart", "shortNames": ["wp"]},
            "versions": [
                {
                    "name": "v1",
                    "served": True,
                    "storage": True,
                    "schema": {"openAPIV3Schema": {"type": "object", "x-kubernetes-preserve-unknown-fields": True}},
                }
            ],
        },
    }
    admin = config.new_client_from_config(config_file=servers["KUBECONFIG"])
    extensions = client.ApiextensionsV1Api(admin)
    extensions.create_custom_resource_definition(crd)
    try:

        def served() -> bool:
            resources = client.CustomObjectsApi(admin).get_api_resources(group, "v1")
            return any(r.name == "widgetparts" for r in resources.resources)

        wait.until("the CRD served", served, timeout=60, not_yet=transient.kube_status(404, 503))
        stamp = now_rfc3339()
        event = {
            "metadata": {"name": "w1.part", "namespace": cluster.team_a},
            "involvedObject": {"kind": "WidgetPart", "name": "w1", "namespace": cluster.team_a,
                               "apiVersion": f"{group}/v1"},
            # A reason of its own: the other tests count this module's RbacProbe events.
            "reason": "RbacWidget",
            "message": "about a widget part",
            "type": "Normal",
            "firstTimestamp": stamp,
            "lastTimestamp": stamp,
            "source": {"component": "e2e-test"},
        }  # fmt: skip
        cluster.core.create_namespaced_event(cluster.team_a, event)
        wait.until(
            "the widget part's event in the archive",
            lambda: cluster.api("search", cluster.tokens["a"], range="1h", reason="RbacWidget")[1]["total"],
            timeout=60,
            not_yet=transient.http,
        )
        for name in ("widgetparts", "widgetpart", "wp"):
            argv = ["--reason", "RbacWidget", "--for", f"{name}.{group}/w1", "-o", "json"]
            code, out, err = proxied.eventlog("a", *argv)
            assert code == 0, err
            about = json.loads(out)["items"]
            assert [(d["involvedObject"]["kind"], d["involvedObject"]["name"]) for d in about] == [
                ("WidgetPart", "w1")
            ], name
    finally:
        extensions.delete_custom_resource_definition(f"widgetparts.{group}")
        admin.close()


def test_eventlog_without_the_proxy_role_is_told_which_role_to_ask_for(proxied: Proxied) -> None:
    code, out, err = proxied.eventlog("e", "--reason", REASON)
    assert code == 1 and out == ""
    namespace = proxied.cluster.explorer_namespace
    assert err.startswith("error: the API server refuses you the explorer's service proxy:")
    assert 'cannot get resource "services/proxy"' in err
    assert f"namespace {namespace} with get on services/proxy, resourceNames [{SERVICE}:web]" in err
    assert len(err.splitlines()) == 1


def test_eventlog_with_a_forged_token_is_refused_by_the_api_server(proxied: Proxied) -> None:
    code, out, err = proxied.eventlog("forged", "--reason", REASON)
    assert code == 1 and out == ""
    assert err.startswith("error: the API server at https://") and "does not accept your credentials" in err
    # And a forged --token over a good kubeconfig: the flag is what is sent.
    code, _, err = proxied.eventlog("a", "--reason", REASON, "--token", forged(proxied.cluster.tokens["a"]))
    assert code == 1 and "does not accept your credentials" in err


def test_the_worker_checks_the_eventlog_token_itself(proxied: Proxied) -> None:
    """Through the proxy as A: the API server lets the request through, and the worker decides on the
    token it is shown, never on the API server's say-so; without one it sees nobody."""
    import ssl

    from streams.explorer import proxy

    server, ca = admin_cluster(proxied.servers["KUBECONFIG"])
    where = proxy.Target(proxied.cluster.explorer_namespace, SERVICE, "web")
    url = proxy.api_url(server, where, "search", {"range": "1h", "reason": REASON})
    context = ssl.create_default_context(cadata=ca.decode())

    def ask(headers: dict[str, str]) -> tuple[int, dict[str, Any]]:
        request = urllib.request.Request(url, headers=headers)
        try:
            with urllib.request.urlopen(request, timeout=30, context=context) as resp:
                return int(resp.status), json.loads(resp.read())
        except urllib.error.HTTPError as exc:
            return exc.code, json.loads(exc.read())

    a = proxied.cluster.tokens["a"]
    status, body = ask({"Authorization": f"Bearer {a}"})
    assert status == 401 and body["state"] == "unauthorized", "the API server passed on Authorization"
    status, body = ask({"Authorization": f"Bearer {a}", proxy.TOKEN_HEADER: forged(proxied.cluster.tokens["c"])})
    assert status == 401 and "does not accept this token" in body["error"]
    status, body = ask(proxy.headers(a))
    assert status == 200 and {r["namespace"] for r in body["rows"]} == {proxied.cluster.team_a}
    # The worker logged neither token it was shown (nor anything of the header).
    logged = proxied.cluster.worker.log.read_text()
    assert a not in logged and forged(proxied.cluster.tokens["c"]) not in logged
    assert proxy.TOKEN_HEADER.lower() not in logged.lower()


def ask_counts(proxied: Proxied, headers: dict[str, str], view: str = "reasons", **params: str) -> tuple[int, Any]:
    """``/counts/<view>/`` of the worker through the API server's service proxy, as A, C or nobody."""
    import ssl

    server, ca = admin_cluster(proxied.servers["KUBECONFIG"])
    path = f"/api/v1/namespaces/{proxied.cluster.explorer_namespace}/services/{SERVICE}:web/proxy/counts/{view}/"
    url = f"{server.rstrip('/')}{path}?{urllib.parse.urlencode(params)}"
    request = urllib.request.Request(url, headers=headers)
    try:
        with urllib.request.urlopen(
            request, timeout=30, context=ssl.create_default_context(cadata=ca.decode())
        ) as resp:
            return int(resp.status), json.loads(resp.read())
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read())


def counted(proxied: Proxied, who: str) -> tuple[set[str], set[str]]:
    """The namespaces of the reason table's keys ``who`` reads: those with this module's probe, and all.

    This hour's window and the last one's: an hour may turn between the counting and the asking.
    """
    from streams.explorer import proxy

    probes: set[str] = set()
    every: set[str] = set()
    for ago in ("0", "1"):
        headers = proxy.headers(proxied.cluster.tokens[who])
        status, body = ask_counts(proxied, headers, window="1h", ago=ago, raw="1")
        assert status == 200, body
        every |= {key.split("/", 1)[0] for key in body["counts"]}
        probes |= {key.split("/", 1)[0] for key in body["counts"] if key.endswith(f"/{REASON}")}
    return probes, every


def test_the_count_views_through_the_proxy_hold_only_the_callers_namespaces(proxied: Proxied) -> None:
    from streams.explorer import proxy

    cluster = proxied.cluster
    # The module's events counted first: C (cluster-wide) sees both teams' probe counts.
    wait.until(
        "the probes counted",
        lambda: {cluster.team_a, cluster.team_b} <= counted(proxied, "c")[0],
        timeout=60,
    )
    probes, every = counted(proxied, "a")
    assert probes == every == {cluster.team_a}, "only team-a's keys leave the worker for A"
    status, body = ask_counts(proxied, proxy.headers(cluster.tokens["a"]), window="1h")
    assert status == 200 and {row["namespace"] for row in body["namespaces"]} <= {cluster.team_a}
    status, body = ask_counts(proxied, proxy.headers(cluster.tokens["a"]), window="1h", namespace=cluster.team_b)
    assert status == 403 and cluster.team_b in body["error"] and body["state"] == "forbidden"
    # The kind table names no namespace: cluster-wide rights only.
    assert ask_counts(proxied, proxy.headers(cluster.tokens["a"]), "kinds", window="1h")[0] == 403
    assert ask_counts(proxied, proxy.headers(cluster.tokens["c"]), "kinds", window="1h")[0] == 200
    # No token for the worker (the API server took Authorization): 401.
    status, body = ask_counts(proxied, proxy.headers(cluster.tokens["a"], worker=False), window="1h")
    assert status == 401 and body["state"] == "unauthorized"
    # The explorer's top reasons ask the worker's own count view with the caller's token.
    # (Without the token the view would refuse it, and top would be a 503.)
    status, body = cluster.api("top", cluster.tokens["a"], window="1h")
    assert status == 200, body
    # The probes stay open for the kubelet and Prometheus.
    for path in ("/healthz", "/readyz", "/metrics"):
        with urllib.request.urlopen(f"{cluster.worker.url}{path}", timeout=30) as resp:
            assert resp.status == 200, path


def test_eventlog_without_any_rights_says_why(proxied: Proxied) -> None:
    code, out, err = proxied.eventlog("n", "-A", "--reason", REASON)
    assert code == 0 and out == ""
    assert "may list events in no namespace" in err


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
