"""A process on this machine as a Service of the local API server, reachable through its service proxy.

``kubectl eventlog`` reaches the workers at ``/api/v1/namespaces/<ns>/services/<name>:<port>/proxy/``.
kube-apiserver proxies only to a Service's endpoint that is a Pod's address, and never to a loopback
(or link-local) one; on devstack no kubelet runs pods. So the worker runs as a process listening on
every address (K8SEV_WEB_BIND's default, 0.0.0.0), and :func:`expose` writes what a kubelet and the
endpoints controller would: a Pod whose status carries this machine's non-loopback address (it is
never scheduled: no scheduler runs), a Service without a selector, and Endpoints naming that Pod at
the process's port.
"""

from __future__ import annotations

import contextlib
import fcntl
import ipaddress
import socket
import struct
from collections.abc import Iterator
from typing import Any

from kubernetes import client
from kubernetes.client.exceptions import ApiException

from devstack import transient, wait

SIOCGIFADDR = 0x8915  # Linux: an interface's IPv4 address


class NoAddress(RuntimeError):
    pass


def proxyable(address: str) -> bool:
    """What kube-apiserver accepts as an endpoint to proxy to: no loopback, link-local, multicast or 0.0.0.0."""
    ip = ipaddress.ip_address(address)
    return not (ip.is_loopback or ip.is_link_local or ip.is_multicast or ip.is_unspecified)


def host_address() -> str:
    """This machine's first IPv4 address the API server will proxy to, found from its interfaces."""
    seen = []
    for _, name in socket.if_nameindex():
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
            try:
                packed = fcntl.ioctl(sock.fileno(), SIOCGIFADDR, struct.pack("256s", name[:15].encode()))
            except OSError:
                continue  # down, or no IPv4 address
        address = socket.inet_ntoa(packed[20:24])
        seen.append(f"{name} {address}")
        if proxyable(address):
            return address
    raise NoAddress(
        "this machine has no IPv4 address kube-apiserver will proxy to (it refuses loopback and link-local"
        f" endpoints), only: {', '.join(seen) or 'none'}. The service-proxy tests need one: bring up an"
        " interface with a private address (e.g. ip addr add 192.0.2.2/24 dev eth0, or a dummy interface)"
    )


def _ignore(status: int, call: Any) -> None:
    try:
        call()
    except ApiException as exc:
        if exc.status != status:
            raise


@contextlib.contextmanager
def expose(
    core: client.CoreV1Api, namespace: str, name: str, port: int, *, port_name: str = "web", service_port: int = 6066
) -> Iterator[str]:
    """Service ``namespace/name`` (port ``port_name``, ``service_port``) in front of this machine's ``port``.

    Yields the address the API server dials. The namespace must exist and have its default
    ServiceAccount (a Pod is admitted only then). Everything is deleted on exit.
    """
    address = host_address()
    pod = {
        "metadata": {"name": name, "namespace": namespace, "labels": {"devstack/exposed": name}},
        "spec": {
            "automountServiceAccountToken": False,
            # Never scheduled, so never run: the Pod only vouches for the address. A scheduler that
            # does not exist, since the stack's own would bind it to a kwok node as soon as one exists,
            # and kwok would then give it a pod IP of its own, which the API server refuses to proxy to.
            "schedulerName": "devstack-host-process",
            "containers": [{"name": "process", "image": "devstack.invalid/host-process"}],
        },
    }
    service = {
        "metadata": {"name": name, "namespace": namespace},
        "spec": {"ports": [{"name": port_name, "port": service_port, "targetPort": port, "protocol": "TCP"}]},
    }
    endpoints = {
        "metadata": {"name": name, "namespace": namespace},
        "subsets": [
            {
                "addresses": [{"ip": address, "targetRef": {"kind": "Pod", "name": name, "namespace": namespace}}],
                "ports": [{"name": port_name, "port": port, "protocol": "TCP"}],
            }
        ],
    }
    try:
        # The ServiceAccount admission refuses a Pod until the namespace's default account exists.
        wait.until(
            f"the host-process Pod {namespace}/{name} admitted",
            lambda: core.create_namespaced_pod(namespace, pod),
            timeout=30,
            interval=0.2,
            not_yet=transient.kube_status(403, 404),
        )
        status = {"status": {"phase": "Running", "podIP": address, "podIPs": [{"ip": address}]}}
        core.patch_namespaced_pod_status(name, namespace, status)
        core.create_namespaced_service(namespace, service)
        core.create_namespaced_endpoints(namespace, endpoints)
        yield address
    finally:
        _ignore(404, lambda: core.delete_namespaced_endpoints(name, namespace))
        _ignore(404, lambda: core.delete_namespaced_service(name, namespace))
        _ignore(404, lambda: core.delete_namespaced_pod(name, namespace, grace_period_seconds=0))
