"""A real Kubernetes control plane on loopback: etcd, kube-apiserver, kube-controller-manager,
kube-scheduler and kwok, all built from source with the Go toolchain into the user cache.

The pieces live next door: how the binaries are built (:mod:`devstack.gobuild`), the tokens, keys and
kubeconfigs (:mod:`devstack.kube_auth`), and the Nodes kwok plays (:mod:`devstack.fake_node`). This
module pins the versions and defines the servers; it re-exports what callers use (``FAKE_NODE``,
``ensure_fake_node``, ``kubeconfig_path``, ...).
"""

from __future__ import annotations

import json
import urllib.error
from pathlib import Path
from typing import TYPE_CHECKING

from devstack import paths, ports, process
from devstack.errors import StackError
from devstack.fake_node import (
    FAKE_NODE,
    FAKE_NODE_ANNOTATION,
    FAKE_NODE_IP,
    ensure_fake_node,
    fake_node_manifest,
    node_ready,
    register_fake_node,
    stage_files,
)
from devstack.gobuild import GoTool, build, download_dir
from devstack.kube_auth import (
    OPENSSL_HINT,
    admin_request,
    apiserver_url,
    cert_dir,
    ensure_credentials,
    https_ok,
    kubeconfig_path,
    sa_key,
    sa_pub,
    server_kubeconfig,
    serving_ca,
    token_file,
    write_server_kubeconfig,
)
from devstack.server import Server

if TYPE_CHECKING:
    from collections.abc import Mapping, Sequence

__all__ = [
    "ETCD",
    "FAKE_NODE",
    "FAKE_NODE_ANNOTATION",
    "FAKE_NODE_IP",
    "KUBERNETES",
    "KUBERNETES_VERSION",
    "KWOK",
    "SERVERS",
    "apiserver_url",
    "ensure_fake_node",
    "fake_node_manifest",
    "kubeconfig_path",
    "serving_ca",
]

KUBERNETES_VERSION = "v1.35.4"
#: kubeadm's etcd for Kubernetes 1.35 (``DefaultEtcdVersion`` 3.6.6); its API matches the v3.6.5
#: client the apiserver is built with.
ETCD_VERSION = "v3.6.6"
KWOK_VERSION = "v0.8.0"

SERVICE_CLUSTER_IP_RANGE = "10.96.0.0/16"
POD_CIDR = "10.244.0.0/16"


def _kubernetes_ldflags() -> str:
    """What upstream's hack/lib/version.sh stamps, so /version reports the pinned release."""
    major, minor = KUBERNETES_VERSION.removeprefix("v").split(".")[:2]
    info = download_dir("k8s.io/kubernetes") / f"{KUBERNETES_VERSION}.info"
    # The release's tag time rather than the wall clock keeps rebuilds identical.
    build_date = json.loads(info.read_text()).get("Time", "") if info.is_file() else ""
    values = {
        "gitVersion": KUBERNETES_VERSION,
        "gitMajor": major,
        "gitMinor": minor,
        "gitTreeState": "clean",
        "buildDate": build_date or "1970-01-01T00:00:00Z",
    }
    flags = ["-s", "-w"]
    for package in ("k8s.io/component-base/version", "k8s.io/client-go/pkg/version"):
        flags += [f"-X {package}.{var}={value}" for var, value in values.items()]
    return " ".join(flags)


_KUBE_COMMANDS = ("kube-apiserver", "kube-controller-manager", "kube-scheduler")
KUBERNETES = GoTool(
    "kubernetes",
    "k8s.io/kubernetes",
    KUBERNETES_VERSION,
    {name: f"k8s.io/kubernetes/cmd/{name}" for name in _KUBE_COMMANDS},
    _kubernetes_ldflags,
)
ETCD = GoTool("etcd", "go.etcd.io/etcd/server/v3", ETCD_VERSION, {"etcd": "go.etcd.io/etcd/server/v3"})
KWOK = GoTool("kwok", "sigs.k8s.io/kwok", KWOK_VERSION, {"kwok": "sigs.k8s.io/kwok/cmd/kwok"})


# --- the servers --------------------------------------------------------------------------------


class Etcd(Server):
    name = "etcd"
    ready_timeout = 60.0

    def ports(self) -> Sequence[int]:
        return [ports.port("ETCD"), ports.port("ETCD_PEER")]

    def provision(self) -> None:
        build(self.name, ETCD)

    def start(self) -> None:
        client, peer = self.ports()
        data = paths.data_dir(self.name)
        data.mkdir(parents=True, exist_ok=True)
        data.chmod(0o700)  # what etcd asks for (it warns at every start otherwise)
        peer_url = f"http://127.0.0.1:{peer}"
        process.spawn(
            self.name,
            [
                str(build(self.name, ETCD) / "etcd"),
                "--name=devstack",
                f"--data-dir={data}",
                f"--listen-client-urls=http://127.0.0.1:{client}",
                f"--advertise-client-urls=http://127.0.0.1:{client}",
                f"--listen-peer-urls={peer_url}",
                f"--initial-advertise-peer-urls={peer_url}",
                f"--initial-cluster=devstack={peer_url}",
                "--initial-cluster-state=new",
                # Test data: losing the last writes on a machine crash is fine, fsync latency is not.
                "--unsafe-no-fsync",
                "--log-level=warn",
            ],
        )

    def probe(self) -> bool:
        return process.http_ok(f"http://127.0.0.1:{ports.port('ETCD')}/health", expect=b'"health":"true"')

    def describe(self) -> str:
        return f"http://127.0.0.1:{ports.port('ETCD')}"


class KubeApiserver(Server):
    name = "kube-apiserver"
    after = ("etcd",)
    ready_timeout = 120.0
    #: Its port's name in :mod:`devstack.ports`.
    port_name = "KUBE_APISERVER"

    def ports(self) -> Sequence[int]:
        return [ports.port(self.port_name)]

    def provision(self) -> None:
        build(self.name, KUBERNETES)
        process.require_tool(self.name, "openssl", OPENSSL_HINT)

    def start(self) -> None:
        ensure_credentials(self.name)
        cert_dir(self.name).mkdir(parents=True, exist_ok=True)
        process.spawn(
            self.name,
            [
                str(build(self.name, KUBERNETES) / "kube-apiserver"),
                f"--etcd-servers=http://127.0.0.1:{ports.port('ETCD')}",
                "--bind-address=127.0.0.1",
                # Needed where there is no default route; also what the `kubernetes` Service points at.
                "--advertise-address=127.0.0.1",
                f"--secure-port={ports.port(self.port_name)}",
                f"--cert-dir={cert_dir(self.name)}",
                f"--token-auth-file={token_file()}",
                "--authorization-mode=Node,RBAC",
                "--service-account-issuer=https://kubernetes.default.svc.cluster.local",
                f"--service-account-key-file={sa_pub()}",
                f"--service-account-signing-key-file={sa_key()}",
                f"--service-cluster-ip-range={SERVICE_CLUSTER_IP_RANGE}",
                "--allow-privileged=true",
                # A loopback address is not a valid Endpoints address: don't reconcile the `kubernetes` one.
                "--endpoint-reconciler-type=none",
                "--profiling=false",
                *self.extra_flags(),
            ],
        )

    def extra_flags(self) -> list[str]:
        return []

    def probe(self) -> bool:
        return https_ok(f"{apiserver_url(self.name)}/readyz", serving_ca(self.name))

    def env(self) -> Mapping[str, str]:
        return {"KUBECONFIG": str(kubeconfig_path()), "DEVSTACK_KUBE_APISERVER": apiserver_url()}

    def describe(self) -> str:
        return f"{apiserver_url()} (KUBECONFIG={kubeconfig_path()})"


class KubeApiserver2(KubeApiserver):
    """A second API server on the same etcd, as a production control plane runs several: its own
    port and self-signed serving certificate, the same token file and service-account keys.

    Unlike the first it keeps Events in its watch cache (upstream's default leaves them out, so the
    first serves every Event watch from etcd and accepts any resourceVersion etcd still has). A watch
    resumed on this one after it restarted, from a resourceVersion older than its cache, gets 410 Gone:
    the two servers differ as two servers of a real control plane may.

    Not started by default: only the control-plane fault cases need it, and every other test session
    would pay for it (measured: 1.5 s of CPU until ready, 5-10 s on a loaded 2-core machine, 250 MB
    resident, 1% of a core idle).
    """

    name = "kube-apiserver-2"
    port_name = "KUBE_APISERVER_2"
    default = False

    def extra_flags(self) -> list[str]:
        return [
            # Any non-zero size only means "cached" (the cache sizes itself).
            "--watch-cache-sizes=events#100",
            # Its identity is a hash of the host name, the same as the first's on this machine: both
            # would renew one identity Lease (a conflict every 10 s) and the one stopping deletes it.
            "--feature-gates=APIServerIdentity=false",
        ]

    def after_ready(self) -> None:
        write_server_kubeconfig(self.name, serving_ca(self.name))

    def env(self) -> Mapping[str, str]:
        return {
            "DEVSTACK_KUBE_APISERVER_2": apiserver_url(self.name),
            "DEVSTACK_KUBECONFIG_2": str(server_kubeconfig(self.name)),
        }

    def describe(self) -> str:
        return f"{apiserver_url(self.name)} (DEVSTACK_KUBECONFIG_2={server_kubeconfig(self.name)})"


class KubeControllerManager(Server):
    name = "kube-controller-manager"
    after = ("kube-apiserver",)
    ready_timeout = 90.0

    def ports(self) -> Sequence[int]:
        return [ports.port("KUBE_CONTROLLER_MANAGER")]

    def provision(self) -> None:
        build(self.name, KUBERNETES)

    def start(self) -> None:
        ensure_credentials(self.name)
        kubeconfig = kubeconfig_path(self.name)
        process.spawn(
            self.name,
            [
                str(build(self.name, KUBERNETES) / "kube-controller-manager"),
                *_component_flags(kubeconfig, ports.port("KUBE_CONTROLLER_MANAGER")),
                f"--service-account-private-key-file={sa_key()}",
                f"--root-ca-file={serving_ca()}",
                # Each controller acts (and is audited) as its own service account, as in kubeadm clusters.
                "--use-service-account-credentials=true",
                "--controllers=*",
                "--cluster-name=devstack",
            ],
        )

    def probe(self) -> bool:
        return https_ok(f"https://127.0.0.1:{ports.port('KUBE_CONTROLLER_MANAGER')}/healthz")


class KubeScheduler(Server):
    name = "kube-scheduler"
    after = ("kube-apiserver",)
    ready_timeout = 90.0

    def ports(self) -> Sequence[int]:
        return [ports.port("KUBE_SCHEDULER")]

    def provision(self) -> None:
        build(self.name, KUBERNETES)

    def start(self) -> None:
        ensure_credentials(self.name)
        process.spawn(
            self.name,
            [
                str(build(self.name, KUBERNETES) / "kube-scheduler"),
                *_component_flags(kubeconfig_path(self.name), ports.port("KUBE_SCHEDULER")),
            ],
        )

    def probe(self) -> bool:
        return https_ok(f"https://127.0.0.1:{ports.port('KUBE_SCHEDULER')}/readyz")


def _component_flags(kubeconfig: Path, port: int) -> list[str]:
    return [
        f"--kubeconfig={kubeconfig}",
        # Same identity for delegated authn/authz of the component's own /metrics etc.
        f"--authentication-kubeconfig={kubeconfig}",
        f"--authorization-kubeconfig={kubeconfig}",
        # Bearer tokens only: don't look for the client-certificate and front-proxy CAs the apiserver
        # publishes (it has none), which would log an error every few seconds.
        "--authentication-skip-lookup=true",
        "--bind-address=127.0.0.1",
        f"--secure-port={port}",
        # One instance: electing a leader would only delay a restart until the old lease expires.
        "--leader-elect=false",
        "--profiling=false",
    ]


class Kwok(Server):
    name = "kwok"
    after = ("kube-apiserver",)
    ready_timeout = 90.0

    def ports(self) -> Sequence[int]:
        return [ports.port("KWOK")]

    def provision(self) -> None:
        build(self.name, KWOK)
        missing = [p.name for p in stage_files() if not p.is_file()]
        if missing:
            where = paths.source_dir() / "kwok"
            raise StackError(self.name, f"kwok stage files missing from {where}: {', '.join(missing)}")

    def start(self) -> None:
        ensure_credentials(self.name)
        try:
            register_fake_node(FAKE_NODE)
        except (urllib.error.URLError, OSError) as exc:
            reason = f"could not reach kube-apiserver to register the fake node {FAKE_NODE}: {exc}"
            raise StackError(self.name, reason) from None
        process.spawn(
            self.name,
            [
                str(build(self.name, KWOK) / "kwok"),
                f"--kubeconfig={kubeconfig_path(self.name)}",
                "--manage-all-nodes=false",
                f"--manage-nodes-with-annotation-selector={FAKE_NODE_ANNOTATION}=fake",
                f"--server-address=127.0.0.1:{ports.port('KWOK')}",
                # kwok renews each node's Lease: that is what keeps the node-lifecycle controller content.
                "--node-lease-duration-seconds=40",
                f"--cidr={POD_CIDR}",
                # The InternalIP every fake node reports (and its pods' hostIP); otherwise it is empty.
                f"--node-ip={FAKE_NODE_IP}",
                *(f"--config={stage}" for stage in stage_files()),
            ],
        )

    def probe(self) -> bool:
        if not process.http_ok(f"http://127.0.0.1:{ports.port('KWOK')}/healthz"):
            return False
        return node_ready(admin_request("GET", f"/api/v1/nodes/{FAKE_NODE}"))

    def env(self) -> Mapping[str, str]:
        return {"DEVSTACK_KWOK_NODE": FAKE_NODE}

    def describe(self) -> str:
        return f"http://127.0.0.1:{ports.port('KWOK')}/healthz, fake node {FAKE_NODE}"


SERVERS: list[Server] = [Etcd(), KubeApiserver(), KubeApiserver2(), KubeControllerManager(), KubeScheduler(), Kwok()]
