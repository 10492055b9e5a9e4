"""A real Kubernetes control plane on loopback: etcd, kube-apiserver, kube-controller-manager,
kube-scheduler and kwok, all built from source with the Go toolchain into the user cache.

Builds
    Each component is built in a small generated helper module under ``<cache>/gobuild/<name>-<version>``
    (its go.mod and go.sum live there, never in the repo) with ``GOMODCACHE``/``GOCACHE`` under
    ``<cache>/go`` and ``CGO_ENABLED=0``; binaries land in ``<cache>/bin/<name>-<version>``, so a warm
    ``provision`` only checks that they exist. The go.mod names the main packages as ``tool`` lines, so
    no Go source is needed. ``k8s.io/kubernetes`` cannot be required as published (its go.mod points
    every staging module at ``./staging/src/...`` and a dependency's replaces are ignored), so the helper
    go.mod is generated from the served one with a ``replace k8s.io/<m> => k8s.io/<m> v0.<minor>.<patch>``
    per staging module.

Security
    kube-apiserver serves HTTPS with a self-signed pair it generates in its ``--cert-dir``; that file is
    the CA of every kubeconfig and the controller-manager's ``--root-ca-file``. Clients authenticate with
    static bearer tokens (``--token-auth-file``, generated once per state directory): the admin and kwok
    in ``system:masters``, the controller-manager and scheduler as their well-known users, so RBAC and the
    Node authorizer stay on as in a real cluster. The service-account key pair (``openssl``) is generated
    once per state directory too; the controller-manager signs tokens with it and runs each controller
    under its own service account.

Nodes
    There is no kubelet. kwok plays only nodes annotated ``kwok.x-k8s.io/node: fake``
    (``--manage-all-nodes=false`` plus that annotation selector): a Node something else creates is left
    alone, and nothing kwok does can surprise a test that did not opt in. Starting kwok registers one such
    node, :data:`FAKE_NODE`, and kwok is ready once that node is Ready, so pods schedule right after
    ``up``; :func:`ensure_fake_node` adds more (or re-creates it). The stages in ``devstack/kwok/`` make a
    fake node Ready, refresh its status, and take its pods to Running/Ready, Jobs' pods to Succeeded, and
    deleted pods away at once (emitting kubelet-like events on the way).
"""

from __future__ import annotations

import json
import ssl
import urllib.error
import urllib.request
from pathlib import Path
from typing import TYPE_CHECKING

from devstack import fake_node, gobuild, kube_auth, paths, ports, process
from devstack.errors import StackError
from devstack.fake_node import FAKE_NODE, FAKE_NODE_ANNOTATION, ensure_fake_node, fake_node_manifest
from devstack.kube_auth import apiserver_url, kubeconfig_path, serving_ca
from devstack.server import Server

__all__ = [
    "FAKE_NODE",
    "FAKE_NODE_ANNOTATION",
    "KUBERNETES_VERSION",
    "SERVERS",
    "apiserver_url",
    "ensure_fake_node",
    "fake_node_manifest",
    "kubeconfig_path",
    "serving_ca",
]

if TYPE_CHECKING:
    from collections.abc import Mapping, Sequence


KUBERNETES_VERSION = "v1.35.4"
#: kubeadm's etcd for Kubernetes 1.35 (``DefaultEtcdVersion`` 3.6.6); its API matches the v3.6.5
#: client the apiserver is built with.
ETCD_VERSION = "v3.6.6"
KWOK_VERSION = "v0.8.0"

SERVICE_CLUSTER_IP_RANGE = "10.96.0.0/16"
POD_CIDR = "10.244.0.0/16"
FAKE_NODE_IP = "10.240.0.1"


# --- the tools ---------------------------------------------------------------------------------


def _kubernetes_ldflags() -> str:
    """What upstream's hack/lib/version.sh stamps, so /version reports the pinned release."""
    major, minor = KUBERNETES_VERSION.removeprefix("v").split(".")[:2]
    info = gobuild.download_dir("k8s.io/kubernetes") / f"{KUBERNETES_VERSION}.info"
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
KUBERNETES = gobuild.GoTool(
    "kubernetes",
    "k8s.io/kubernetes",
    KUBERNETES_VERSION,
    {name: f"k8s.io/kubernetes/cmd/{name}" for name in _KUBE_COMMANDS},
    _kubernetes_ldflags,
)
ETCD = gobuild.GoTool("etcd", "go.etcd.io/etcd/server/v3", ETCD_VERSION, {"etcd": "go.etcd.io/etcd/server/v3"})
KWOK = gobuild.GoTool("kwok", "sigs.k8s.io/kwok", KWOK_VERSION, {"kwok": "sigs.k8s.io/kwok/cmd/kwok"})


def _https_ok(url: str, cafile: Path | None = None, timeout: float = 2.0) -> bool:
    """True when ``url`` answers 2xx over TLS; without ``cafile`` the (loopback) peer is not verified."""
    if cafile is None:
        context = ssl._create_unverified_context()  # noqa: S323 - self-signed, in-memory loopback certs
    elif cafile.is_file():
        context = ssl.create_default_context(cafile=str(cafile))
    else:
        return False
    try:
        with urllib.request.urlopen(url, timeout=timeout, context=context) as resp:  # noqa: S310 - loopback
            resp.read()
    except (urllib.error.URLError, OSError):
        return False
    return True


# --- the servers --------------------------------------------------------------------------------


class Etcd(Server):
    name = "etcd"
    ready_timeout = 60.0

    def ports(self) -> Sequence[int]:
        return [ports.port("ETCD"), ports.port("ETCD_PEER")]

    def provision(self) -> None:
        gobuild.build(self.name, ETCD)

    def start(self) -> None:
        client, peer = self.ports()
        data = paths.data_dir(self.name)
        data.mkdir(parents=True, exist_ok=True)
        data.chmod(0o700)  # what etcd asks for (it warns at every start otherwise)
        peer_url = f"http://127.0.0.1:{peer}"
        process.spawn(
            self.name,
            [
                str(gobuild.build(self.name, ETCD) / "etcd"),
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

    def ports(self) -> Sequence[int]:
        return [ports.port("KUBE_APISERVER")]

    def provision(self) -> None:
        gobuild.build(self.name, KUBERNETES)
        process.require_tool(self.name, "openssl", kube_auth.OPENSSL_HINT)

    def start(self) -> None:
        kube_auth.ensure_credentials(self.name)
        kube_auth.cert_dir().mkdir(parents=True, exist_ok=True)
        process.spawn(
            self.name,
            [
                str(gobuild.build(self.name, KUBERNETES) / "kube-apiserver"),
                f"--etcd-servers=http://127.0.0.1:{ports.port('ETCD')}",
                "--bind-address=127.0.0.1",
                # Needed where there is no default route; also what the `kubernetes` Service points at.
                "--advertise-address=127.0.0.1",
                f"--secure-port={ports.port('KUBE_APISERVER')}",
                f"--cert-dir={kube_auth.cert_dir()}",
                f"--token-auth-file={kube_auth.token_file()}",
                "--authorization-mode=Node,RBAC",
                "--service-account-issuer=https://kubernetes.default.svc.cluster.local",
                f"--service-account-key-file={kube_auth.sa_pub()}",
                f"--service-account-signing-key-file={kube_auth.sa_key()}",
                f"--service-cluster-ip-range={SERVICE_CLUSTER_IP_RANGE}",
                "--allow-privileged=true",
                # A loopback address is not a valid Endpoints address: don't reconcile the `kubernetes` one.
                "--endpoint-reconciler-type=none",
                "--profiling=false",
            ],
        )

    def probe(self) -> bool:
        return _https_ok(f"{apiserver_url()}/readyz", serving_ca())

    def env(self) -> Mapping[str, str]:
        return {"KUBECONFIG": str(kubeconfig_path()), "DEVSTACK_KUBE_APISERVER": apiserver_url()}

    def describe(self) -> str:
        return f"{apiserver_url()} (KUBECONFIG={kubeconfig_path()})"


class KubeControllerManager(Server):
    name = "kube-controller-manager"
    after = ("kube-apiserver",)
    ready_timeout = 90.0

    def ports(self) -> Sequence[int]:
        return [ports.port("KUBE_CONTROLLER_MANAGER")]

    def provision(self) -> None:
        gobuild.build(self.name, KUBERNETES)

    def start(self) -> None:
        kube_auth.ensure_credentials(self.name)
        kubeconfig = kubeconfig_path(self.name)
        process.spawn(
            self.name,
            [
                str(gobuild.build(self.name, KUBERNETES) / "kube-controller-manager"),
                *_component_flags(kubeconfig, ports.port("KUBE_CONTROLLER_MANAGER")),
                f"--service-account-private-key-file={kube_auth.sa_key()}",
                f"--root-ca-file={serving_ca()}",
                # Each controller acts (and is audited) as its own service account, as in kubeadm clusters.
                "--use-service-account-credentials=true",
                "--controllers=*",
                "--cluster-name=devstack",
            ],
        )

    def probe(self) -> bool:
        return _https_ok(f"https://127.0.0.1:{ports.port('KUBE_CONTROLLER_MANAGER')}/healthz")


class KubeScheduler(Server):
    name = "kube-scheduler"
    after = ("kube-apiserver",)
    ready_timeout = 90.0

    def ports(self) -> Sequence[int]:
        return [ports.port("KUBE_SCHEDULER")]

    def provision(self) -> None:
        gobuild.build(self.name, KUBERNETES)

    def start(self) -> None:
        kube_auth.ensure_credentials(self.name)
        process.spawn(
            self.name,
            [
                str(gobuild.build(self.name, KUBERNETES) / "kube-scheduler"),
                *_component_flags(kubeconfig_path(self.name), ports.port("KUBE_SCHEDULER")),
            ],
        )

    def probe(self) -> bool:
        return _https_ok(f"https://127.0.0.1:{ports.port('KUBE_SCHEDULER')}/readyz")


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
        gobuild.build(self.name, KWOK)
        missing = [p.name for p in _stage_files() if not p.is_file()]
        if missing:
            where = paths.source_dir() / "kwok"
            raise StackError(self.name, f"kwok stage files missing from {where}: {', '.join(missing)}")

    def start(self) -> None:
        kube_auth.ensure_credentials(self.name)
        try:
            fake_node.register_fake_node(FAKE_NODE)
        except (urllib.error.URLError, OSError) as exc:
            reason = f"could not reach kube-apiserver to register the fake node {FAKE_NODE}: {exc}"
            raise StackError(self.name, reason) from None
        process.spawn(
            self.name,
            [
                str(gobuild.build(self.name, KWOK) / "kwok"),
                f"--kubeconfig={kubeconfig_path(self.name)}",
                "--manage-all-nodes=false",
                f"--manage-nodes-with-annotation-selector={FAKE_NODE_ANNOTATION}=fake",
                f"--server-address=127.0.0.1:{ports.port('KWOK')}",
                # kwok renews each node's Lease: that is what keeps the node-lifecycle controller content.
                "--node-lease-duration-seconds=40",
                f"--cidr={POD_CIDR}",
                # The InternalIP every fake node reports (and its pods' hostIP); otherwise it is empty.
                f"--node-ip={FAKE_NODE_IP}",
                *(f"--config={stage}" for stage in _stage_files()),
            ],
        )

    def probe(self) -> bool:
        if not process.http_ok(f"http://127.0.0.1:{ports.port('KWOK')}/healthz"):
            return False
        return fake_node.node_ready(kube_auth.admin_request("GET", f"/api/v1/nodes/{FAKE_NODE}"))

    def env(self) -> Mapping[str, str]:
        return {"DEVSTACK_KWOK_NODE": FAKE_NODE}

    def describe(self) -> str:
        return f"http://127.0.0.1:{ports.port('KWOK')}/healthz, fake node {FAKE_NODE}"


_STAGES = ("node-initialize", "node-heartbeat", "pod-ready", "pod-complete", "pod-delete")


def _stage_files() -> list[Path]:
    return [paths.source_dir() / "kwok" / f"{name}.yaml" for name in _STAGES]


SERVERS: list[Server] = [Etcd(), KubeApiserver(), KubeControllerManager(), KubeScheduler(), Kwok()]
