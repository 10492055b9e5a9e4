"""The servers of the local stack in start order, and the up/down/status operations on them."""

from __future__ import annotations

import logging
import time
from collections.abc import Iterable, Sequence

from devstack import process
from devstack.errors import StackError
from devstack.server import Server

__all__ = [
    "GROUPS",
    "KUBE_GROUP",
    "KUBE_HA_GROUP",
    "Server",
    "all_servers",
    "down",
    "env",
    "provision",
    "select",
    "status",
    "up",
]

log = logging.getLogger("devstack")


def all_servers() -> list[Server]:
    # Imported here so `python -m devstack status` does not pay for every module.
    from devstack import https_proxy, kafka, kube, kube_lb, search

    return [*kafka.SERVERS, *search.SERVERS, *https_proxy.SERVERS, *kube.SERVERS, *kube_lb.SERVERS]


def select(names: Iterable[str], *, every: bool = False) -> list[Server]:
    """The named servers (or groups) and what they need, in start order. No name: the default
    servers, or with ``every`` all of them (what ``down`` and ``status`` act on)."""
    servers = all_servers()
    wanted = list(names)
    if not wanted:
        return [s for s in servers if every or s.default]
    by_name = {s.name: s for s in servers}
    chosen: list[str] = []
    for name in wanted:
        expanded = sorted(GROUPS[name]) if name in GROUPS else [name]
        for item in expanded:
            if item not in by_name:
                known = ", ".join([*by_name, *GROUPS])
                raise StackError(item, f"no such server (known: {known})")
            chosen.append(item)
    # Pull in what the chosen ones need, then keep the registry's order.
    closure = set(chosen)
    frontier = list(chosen)
    while frontier:
        for dep in by_name[frontier.pop()].after:
            if dep not in closure:
                closure.add(dep)
                frontier.append(dep)
    return [s for s in servers if s.name in closure]


KUBE_GROUP = {"etcd", "kube-apiserver", "kube-controller-manager", "kube-scheduler", "kwok"}
#: The second API server and the load balancer in front of both (not started by default).
KUBE_HA_GROUP = {"kube-apiserver-2", "kube-apiserver-lb"}
GROUPS = {"kube": KUBE_GROUP, "kube-ha": KUBE_HA_GROUP}


def provision(servers: Sequence[Server]) -> None:
    for server in servers:
        started = time.monotonic()
        server.provision()
        log.info("provisioned %s in %.1fs", server.name, time.monotonic() - started)


def up(servers: Sequence[Server]) -> None:
    """Provision, then start in waves: a server starts once everything it needs is ready."""
    provision(servers)
    ready: set[str] = {s.name for s in servers if process.read_pid(s.name) and _probe(s)}
    for name in sorted(ready):
        log.info("%s already running", name)
    pending = [s for s in servers if s.name not in ready]
    names = {s.name for s in servers}
    while pending:
        wave = [s for s in pending if all(d in ready or d not in names for d in s.after)]
        if not wave:
            raise StackError(pending[0].name, "dependency cycle in the stack definition")
        for server in wave:
            if process.read_pid(server.name) is not None:
                # Ours, but not answering: restart it cleanly.
                process.stop(server.name)
            process.require_ports_free(server.name, server.ports())
            server.start()
        for server in wave:
            started = time.monotonic()
            process.wait_ready(server.name, server.probe, server.ready_timeout)
            server.after_ready()
            log.info("%s ready in %.1fs (%s)", server.name, time.monotonic() - started, server.describe())
            ready.add(server.name)
        pending = [s for s in pending if s.name not in ready]


def down(servers: Sequence[Server]) -> None:
    for server in reversed(servers):
        if process.stop(server.name):
            log.info("stopped %s", server.name)


def _probe(server: Server) -> bool:
    try:
        return server.probe()
    except Exception:  # noqa: BLE001 - a probe failing for any reason means "not ready"
        return False


def status(servers: Sequence[Server]) -> list[tuple[str, str, str]]:
    rows = []
    for server in servers:
        pid = process.read_pid(server.name)
        if pid is None:
            state = "stopped"
        elif _probe(server):
            state = f"ready (pid {pid})"
        else:
            state = f"not ready (pid {pid})"
        rows.append((server.name, state, server.describe()))
    return rows


def env(servers: Sequence[Server]) -> dict[str, str]:
    merged: dict[str, str] = {}
    for server in servers:
        merged.update(server.env())
    return merged
