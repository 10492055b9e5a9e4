"""Fault cases on a control plane of two API servers on one etcd, the worker behind a TCP load balancer.

As in production, the worker's kubeconfig names the load balancer (``kube-apiserver-lb``): a watch or a
Lease renewal that reconnects may land on the other server. The two differ as real ones may: the
first serves Event watches from etcd (upstream's default, no Event watch cache), the second from its
watch cache, which starts afresh at every restart. The event generator writes through the load
balancer too, so it goes on while one server is away. Each case asserts the ledger (0 lost,
0 unexpected) through ``run_case`` and prints its ``LEDGER`` line.

Like the other fault cases these stop servers of the stack they run on: run them on a stack of your
own on a shared machine (``DEVSTACK_STATE`` and every ``DEVSTACK_PORT_*``).
"""

from __future__ import annotations

import contextlib
import time
import urllib.error
from collections.abc import Iterator
from http import HTTPStatus
from typing import Any

import pytest
from elasticsearch import Elasticsearch
from kubernetes import client, config
from kubernetes.client.exceptions import ApiException

from devstack import kube_auth, process, transient, wait
from devstack import stack as devstack
from devstack.worker import Worker, metric, unique_name
from tests.faults.ledger import Figures, indexed_versions, is_indexed
from tests.faults.test_faults import FAST, Case, run_case

pytestmark = [pytest.mark.stack, pytest.mark.faults, pytest.mark.slow]

FIRST, SECOND = "kube-apiserver", "kube-apiserver-2"


@pytest.fixture(scope="module")
def two_servers(stack: dict[str, str], request: pytest.FixtureRequest) -> Iterator[dict[str, str]]:
    """The second API server and the load balancer, started for this module unless running already."""
    servers = devstack.select(["kube-ha"])
    already = {name for name, state, _ in devstack.status(servers) if state.startswith("ready")}
    all_up()
    yield {**stack, **devstack.env(servers)}
    # The cases restart the first server: the tests after these find its controller-manager acting again.
    controllers_back()
    if not request.config.getoption("--keep-stack"):
        devstack.down([s for s in servers if s.name in devstack.KUBE_HA_GROUP and s.name not in already])


def all_up() -> None:
    """Both servers and the load balancer ready (those already running are left alone)."""
    devstack.up(devstack.select(["kube-ha"]))


def one(name: str) -> list[devstack.Server]:
    return [s for s in devstack.all_servers() if s.name == name]


#: SIGTERM, then SIGKILL after this long. A stopping kube-apiserver refuses new connections at once but
#: holds open HTTP/1.1 watches up to its request timeout (60 s; devstack's own stop kills at 30 s).
#: What the worker must survive is that the connections end, not how long the server took.
STOP_GRACE = 5.0


def stop(name: str) -> None:
    process.stop(name, timeout=STOP_GRACE)


def restart(name: str) -> None:
    stop(name)
    devstack.up(one(name))


@pytest.fixture
def namespace(kube_client: client.ApiClient) -> Iterator[str]:
    """A fresh namespace for the Events, without waiting for its default ServiceAccount (no pod runs
    here): the controller-manager that makes it may still be reconnecting to the restarted first server."""
    core = client.CoreV1Api(kube_client)
    name = unique_name("test")
    core.create_namespace(client.V1Namespace(metadata=client.V1ObjectMeta(name=name)))
    yield name
    with contextlib.suppress(ApiException):
        core.delete_namespace(name)


@pytest.fixture(scope="module")
def lb_client(two_servers: dict[str, str]) -> Iterator[client.ApiClient]:
    """An admin client through the load balancer: what the generator writes with."""
    api = config.new_client_from_config(config_file=two_servers["DEVSTACK_KUBECONFIG_LB"])
    yield api
    api.close()


@pytest.fixture
def behind_lb(two_servers: dict[str, str], namespace: str) -> dict[str, str]:
    """A worker's settings: the load balancer's kubeconfig, the test's namespace, short leases."""
    lb = two_servers["DEVSTACK_KUBECONFIG_LB"]
    return {"KUBECONFIG": lb, "K8SEV_KUBECONFIG": lb, "K8SEV_NAMESPACES": namespace, **FAST}


def event_watches(server: str) -> int:
    """Event WATCH requests the server is serving now (0 if it does not answer)."""
    try:
        text = kube_auth.admin_text("/metrics", server=server)
    except OSError:
        return 0
    return int(metric(text, "apiserver_longrunning_requests", verb="WATCH", resource="events"))


def watch_server(timeout: float = 60.0) -> str:
    """The server the worker's Event watch is on (the worker is the only one watching Events)."""

    def which() -> str | None:
        holding = [s for s in (FIRST, SECOND) if event_watches(s) > 0]
        return holding[0] if len(holding) == 1 else None

    found = wait.until("exactly one API server serving the Event watch", which, timeout=timeout, interval=0.2)
    assert found is not None
    return found


def other(server: str) -> str:
    return SECOND if server == FIRST else FIRST


def watch_figures(worker: Worker, figures: Figures, generator_errors: int) -> None:
    text = worker.metrics()
    figures.extra.update(
        generator_errors=generator_errors,
        leadership_acquired=int(metric(text, "k8sev_ingest_leadership_acquired_total")),
        gone=int(metric(text, "k8sev_watch_restarts_total", cause="gone")),
        relists=int(metric(text, "k8sev_watch_relists_total")),
        watch_on=watch_server(),
    )


@contextlib.contextmanager
def servers_back() -> Iterator[None]:
    """Whatever the case did, both servers serve again afterwards (the fixtures' teardown needs them)."""
    try:
        yield
    finally:
        all_up()


def controllers_back(timeout: float = 120.0) -> None:
    """Until a new namespace gets its default ServiceAccount. After its server restarted, the
    controller-manager's informers retry with a back-off of up to 30 s, and the ``namespace`` fixture
    waits only 30 s for that account."""
    name = unique_name("probe")

    def create() -> bool:
        try:
            kube_auth.admin_request("POST", "/api/v1/namespaces", {"metadata": {"name": name}})
        except urllib.error.HTTPError as exc:
            if exc.code != HTTPStatus.CONFLICT:  # 409: an earlier try did create it
                raise
        return True

    def is_http(exc: Exception) -> bool:
        return isinstance(exc, OSError)  # urllib's HTTPError (404 until then) and refused connections

    wait.until(f"namespace {name} created", create, timeout=60, not_yet=is_http)
    try:
        wait.until(f"namespace {name}'s default ServiceAccount", lambda: kube_auth.admin_request(
            "GET", f"/api/v1/namespaces/{name}/serviceaccounts/default"), timeout=timeout, interval=0.5,
            not_yet=is_http)  # fmt: skip
    finally:
        with contextlib.suppress(OSError):
            kube_auth.admin_request("DELETE", f"/api/v1/namespaces/{name}")


def test_the_workers_api_server_stopped_while_the_other_serves(
    make_worker: Any, lb_client: client.ApiClient, namespace: str, es_client: Elasticsearch, behind_lb: dict[str, str]
) -> None:
    worker = make_worker(**behind_lb)

    def stop_its_server(case: Case) -> None:
        # The fault lasts to the end of the case; resume_s counts from the stop.
        stopped = watch_server()
        stop(stopped)
        case.extra["stopped"] = stopped

    with servers_back():
        run_case("apiserver_stopped_other_serves", worker, lb_client, namespace, es_client, stop_its_server,
                 measure=lambda case, figures: watch_figures(case.worker, figures, case.generator.errors))  # fmt: skip


def test_rolling_restart_of_both_api_servers(
    make_worker: Any, lb_client: client.ApiClient, namespace: str, es_client: Elasticsearch, behind_lb: dict[str, str]
) -> None:
    worker = make_worker(**behind_lb)

    def rolling_restart(case: Case) -> None:
        # One at a time, the next once the previous is ready again, as an upgrade does.
        case.extra["watch_was_on"] = watch_server()
        for name, key in ((FIRST, "restart_1_s"), (SECOND, "restart_2_s")):
            began = time.monotonic()
            restart(name)
            case.extra[key] = f"{time.monotonic() - began:.1f}"

    with servers_back():
        run_case("apiserver_rolling_restart", worker, lb_client, namespace, es_client, rolling_restart,
                 measure=lambda case, figures: watch_figures(case.worker, figures, case.generator.errors))  # fmt: skip


def advance_etcd(api: client.ApiClient, namespace: str, writes: int) -> int:
    """Writes that are no Events, so etcd's revision moves on while the Event watch sees nothing;
    returns the last one's resourceVersion."""
    core = client.CoreV1Api(api)
    name = "etcd-moves-on"
    made = core.create_namespaced_config_map(namespace, {"metadata": {"name": name}, "data": {"n": "0"}})
    for n in range(1, writes):
        made = core.patch_namespaced_config_map(name, namespace, {"data": {"n": str(n)}})
    return int(made.metadata.resource_version)


def test_a_restarted_server_whose_watch_cache_starts_after_the_resume_point(
    make_worker: Any, lb_client: client.ApiClient, namespace: str, es_client: Elasticsearch, behind_lb: dict[str, str]
) -> None:
    worker = make_worker(**behind_lb)

    def cache_after_the_resume_point(case: Case) -> None:
        generator = case.generator
        generator.stop()
        before = set(generator.versions)
        # All delivered first: the worker's resume point is then the namespace's last Event.
        wait.until(f"the {len(before)} versions so far indexed",
                   lambda: set(indexed_versions(es_client, case.worker.index_prefix)), timeout=120,
                   ready=lambda found: before <= found, not_yet=transient.search)  # fmt: skip
        # The caching server goes; the watch is (or moves) on the first, which sends no bookmarks
        # (Events come from etcd there), so the watch's resourceVersion stays at the last Event ...
        stop(SECOND)
        wait.until("the Event watch on the first server", lambda: event_watches(FIRST), timeout=60, interval=0.2)
        # ... while etcd moves on. Restarted now, the second's Event cache starts past that point.
        cache_from = advance_etcd(lb_client, namespace, 20)
        devstack.up(one(SECOND))
        text = case.worker.metrics()
        gone, relists = (
            metric(text, "k8sev_watch_restarts_total", cause="gone"),
            metric(text, "k8sev_watch_relists_total"),
        )
        starts = len(case.worker.log_events("watch_started"))
        # The watch's server goes: the watch resumes on the second, from before its cache.
        stop(FIRST)
        # One new Event, nothing else, until it is indexed: it cannot be superseded before a relist
        # sees it, and once it is in, the watch (or the relist after a 410) has got past the switch.
        probe = wait.until("an Event written through the second server", generator.write_new, timeout=60,
                           not_yet=transient.kube)  # fmt: skip
        wait.until(f"{probe} indexed", lambda: is_indexed(es_client, case.worker.index_prefix, probe), timeout=90,
                   interval=0.2, not_yet=transient.search)  # fmt: skip
        text = case.worker.metrics()
        went = metric(text, "k8sev_watch_restarts_total", cause="gone") - gone
        resumed_from = [e.get("resource_version", "?") for e in case.worker.log_events("watch_started")[starts:]]
        case.extra.update(
            # Which way the second server went: 410 Gone and a relist, or it served the old point.
            outcome="relist_after_410" if went else "resumed",
            resumed_from=resumed_from[0] if resumed_from else "?",
            cache_from=cache_from,
            relists_in_switch=int(metric(text, "k8sev_watch_relists_total") - relists),
        )
        devstack.up(one(FIRST))

    with servers_back():
        run_case("apiserver_cache_after_resume_point", worker, lb_client, namespace, es_client,
                 cache_after_the_resume_point,
                 measure=lambda case, figures: watch_figures(case.worker, figures, case.generator.errors))  # fmt: skip
