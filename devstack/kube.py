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

import contextlib
import fcntl
import json
import re
import secrets
import shutil
import ssl
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from devstack import paths, ports, process, transient, wait
from devstack.errors import StackError
from devstack.server import Server

if TYPE_CHECKING:
    import os
    from collections.abc import Callable, Iterator, Mapping, Sequence

    from kubernetes.client import ApiClient, V1Node

KUBERNETES_VERSION = "v1.35.4"
#: kubeadm's etcd for Kubernetes 1.35 (``DefaultEtcdVersion`` 3.6.6); its API matches the v3.6.5
#: client the apiserver is built with.
ETCD_VERSION = "v3.6.6"
KWOK_VERSION = "v0.8.0"

FAKE_NODE = "kwok-node-0"
FAKE_NODE_ANNOTATION = "kwok.x-k8s.io/node"
SERVICE_CLUSTER_IP_RANGE = "10.96.0.0/16"
POD_CIDR = "10.244.0.0/16"
FAKE_NODE_IP = "10.240.0.1"

_GO_HINT = "install Go 1.26 or newer from https://go.dev/dl and put its bin directory on PATH"
_OPENSSL_HINT = "install OpenSSL (apt-get install openssl); it generates the service-account keys"


# --- Go builds ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class _GoTool:
    """Binaries built from one published Go module at a pinned version."""

    name: str
    module: str
    version: str
    #: Binary name -> main package.
    binaries: Mapping[str, str]
    ldflags: Callable[[], str] = field(default=lambda: "-s -w")

    def bin_dir(self) -> Path:
        return paths.cache_dir() / "bin" / f"{self.name}-{self.version}"

    def work_dir(self) -> Path:
        return paths.cache_dir() / "gobuild" / f"{self.name}-{self.version}"


def _kubernetes_ldflags() -> str:
    """What upstream's hack/lib/version.sh stamps, so /version reports the pinned release."""
    major, minor = KUBERNETES_VERSION.removeprefix("v").split(".")[:2]
    info = _download_dir("k8s.io/kubernetes") / f"{KUBERNETES_VERSION}.info"
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
KUBERNETES = _GoTool(
    "kubernetes",
    "k8s.io/kubernetes",
    KUBERNETES_VERSION,
    {name: f"k8s.io/kubernetes/cmd/{name}" for name in _KUBE_COMMANDS},
    _kubernetes_ldflags,
)
ETCD = _GoTool("etcd", "go.etcd.io/etcd/server/v3", ETCD_VERSION, {"etcd": "go.etcd.io/etcd/server/v3"})
KWOK = _GoTool("kwok", "sigs.k8s.io/kwok", KWOK_VERSION, {"kwok": "sigs.k8s.io/kwok/cmd/kwok"})


def _go_env() -> dict[str, str]:
    root = paths.cache_dir() / "go"
    return {
        "GOMODCACHE": str(root / "mod"),
        "GOCACHE": str(root / "build"),
        "CGO_ENABLED": "0",
        # The helper go.mod is generated, so the go command may complete it and go.sum.
        "GOFLAGS": "-mod=mod -buildvcs=false",
    }


def _download_dir(module: str) -> Path:
    """Where the module cache keeps a module's ``.info``/``.mod`` files (upper case escaped as ``!x``)."""
    escaped = "".join(f"!{c.lower()}" if c.isupper() else c for c in module)
    return Path(_go_env()["GOMODCACHE"]) / "cache" / "download" / escaped / "@v"


def build(server: str, tool: _GoTool) -> Path:
    """The directory holding ``tool``'s binaries, built first if any is missing."""
    out = tool.bin_dir()
    if all((out / name).is_file() for name in tool.binaries):
        return out
    go = process.require_tool(server, "go", _GO_HINT)
    work = tool.work_dir()
    work.mkdir(parents=True, exist_ok=True)
    with _locked(work / ".lock"):
        # Another `up` may have finished the same build while we waited for the lock.
        if all((out / name).is_file() for name in tool.binaries):
            return out
        _build_locked(server, tool, go, work)
    return out


@contextlib.contextmanager
def _locked(lock: Path) -> Iterator[None]:
    with lock.open("w") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        yield


def _build_locked(server: str, tool: _GoTool, go: str, work: Path) -> None:
    log = work / "build.log"
    env = _go_env()
    served = _served_gomod(server, go, tool, log)
    (work / "go.mod").write_text(_helper_gomod(tool, served))
    process.run_logged(
        server,
        [go, "mod", "tidy"],
        what=f"resolving the Go modules of {tool.module}@{tool.version}",
        log=log,
        cwd=work,
        env=env,
        timeout=1800,
    )
    staging = work / "bin.tmp"
    shutil.rmtree(staging, ignore_errors=True)
    staging.mkdir()
    argv = [go, "build", "-trimpath", f"-ldflags={tool.ldflags()}", "-o", f"{staging}/"]
    process.run_logged(
        server,
        [*argv, *tool.binaries.values()],
        what=f"building {', '.join(tool.binaries)} {tool.version} (a first build takes minutes)",
        log=log,
        cwd=work,
        env=env,
        timeout=3600,
    )
    out = tool.bin_dir()
    out.mkdir(parents=True, exist_ok=True)
    for name, package in tool.binaries.items():
        built = staging / _exe_name(package)
        if not built.is_file():
            raise StackError(server, f"go build left no {built.name} for {package}", log)
        built.replace(out / name)
    shutil.rmtree(staging, ignore_errors=True)


def _exe_name(package: str) -> str:
    """The file name ``go build -o dir/`` gives a main package (a trailing /vN is skipped)."""
    parts = package.rstrip("/").split("/")
    if len(parts) > 1 and re.fullmatch(r"v\d+", parts[-1]):
        return parts[-2]
    return parts[-1]


def _served_gomod(server: str, go: str, tool: _GoTool, log: Path) -> str:
    """The go.mod the module proxy serves for the tool's module (downloaded into the cache if needed)."""
    mod = _download_dir(tool.module) / f"{tool.version}.mod"
    if not mod.is_file():
        scratch = paths.cache_dir() / "gobuild"
        process.run_logged(
            server,
            [go, "mod", "download", f"{tool.module}@{tool.version}"],
            what=f"downloading {tool.module}@{tool.version}",
            log=log,
            cwd=scratch,
            env={**_go_env(), "GOFLAGS": "-mod=mod"},
            timeout=1800,
        )
    if not mod.is_file():
        raise StackError(server, f"the Go module cache has no {mod} after downloading it", log)
    return mod.read_text()


def _helper_gomod(tool: _GoTool, served: str) -> str:
    """A go.mod that requires ``tool.module`` and lists its main packages as tools.

    The served go.mod's ``go`` and ``godebug`` lines are kept, so the binaries get the language
    version and GODEBUG defaults upstream builds them with. Every local ``./staging/src/k8s.io/<m>``
    replace (only k8s.io/kubernetes has them) becomes ``k8s.io/<m> v0.<minor>.<patch>``, the version
    those modules are published at for the release.
    """
    go_line, godebug = "go 1.24", ""
    replaces: list[str] = []
    staging_version = "v0." + tool.version.split(".", 1)[1]
    for raw in served.splitlines():
        line = raw.strip()
        if line.startswith("go "):
            go_line = line
        elif line.startswith("godebug "):
            godebug = line
        elif "=> ./staging/src/" in line:
            path = line.removeprefix("replace").strip().split()[0]
            replaces.append(f"\t{path} => {path} {staging_version}")
    lines = [f"module devstack.local/{tool.name}", "", go_line, ""]
    if godebug:
        lines += [godebug, ""]
    lines += [f"require {tool.module} {tool.version}", ""]
    lines += [f"tool {package}" for package in tool.binaries.values()]
    if replaces:
        lines += ["", "replace (", *replaces, ")"]
    return "\n".join(lines) + "\n"


# --- credentials and kubeconfigs ----------------------------------------------------------------

#: Kubeconfig name -> (user, groups) in the token file.
_IDENTITIES = {
    "admin": ("devstack-admin", "system:masters"),
    "kube-controller-manager": ("system:kube-controller-manager", ""),
    "kube-scheduler": ("system:kube-scheduler", ""),
    "kwok": ("devstack-kwok", "system:masters"),
}


def _kube_dir() -> Path:
    return paths.state_dir() / "kube"


def kubeconfig_path(identity: str = "admin") -> Path:
    """The kubeconfig the tool writes for ``identity`` (the admin one by default)."""
    return _kube_dir() / f"{identity}.kubeconfig"


def _token_file() -> Path:
    return _kube_dir() / "tokens.csv"


def _sa_key() -> Path:
    return _kube_dir() / "service-account.key"


def _sa_pub() -> Path:
    return _kube_dir() / "service-account.pub"


def _cert_dir() -> Path:
    return paths.data_dir("kube-apiserver") / "pki"


def serving_ca() -> Path:
    """The apiserver's self-signed serving certificate (with its CA): the clients' trust anchor."""
    return _cert_dir() / "apiserver.crt"


def apiserver_url() -> str:
    return f"https://127.0.0.1:{ports.port('KUBE_APISERVER')}"


def _ensure_credentials(server: str) -> None:
    """Tokens, service-account keys and kubeconfigs: made once, kubeconfigs refreshed every start."""
    directory = _kube_dir()
    directory.mkdir(parents=True, exist_ok=True)
    directory.chmod(0o700)
    tokens = _tokens()
    if set(tokens) != set(_IDENTITIES):
        tokens = {name: secrets.token_hex(24) for name in _IDENTITIES}
        rows = [f'{tokens[n]},{user},{user},"{groups}"' for n, (user, groups) in _IDENTITIES.items()]
        _write_private(_token_file(), "\n".join(rows) + "\n")
    if not (_sa_key().is_file() and _sa_pub().is_file()):
        _make_service_account_keys(server)
    for name, (user, _groups) in _IDENTITIES.items():
        _write_private(kubeconfig_path(name), json.dumps(_kubeconfig(user, tokens[name]), indent=2) + "\n")


def _tokens() -> dict[str, str]:
    """Kubeconfig name -> bearer token, as written to the token file."""
    by_user = {user: name for name, (user, _groups) in _IDENTITIES.items()}
    try:
        text = _token_file().read_text()
    except FileNotFoundError:
        return {}
    tokens = {}
    for row in text.splitlines():
        token, user = row.split(",")[:2]
        if user in by_user:
            tokens[by_user[user]] = token
    return tokens


def _write_private(path: Path, text: str) -> None:
    tmp = _tmp_beside(path)
    tmp.write_text(text)
    tmp.chmod(0o600)
    tmp.replace(path)


def _tmp_beside(path: Path) -> Path:
    """Where a file is written before it replaces ``path`` (so readers never see half of it)."""
    return path.with_name(f".{path.name}.tmp")


def _make_service_account_keys(server: str) -> None:
    openssl = process.require_tool(server, "openssl", _OPENSSL_HINT)
    log = paths.log_file(server)
    key_tmp, pub_tmp = _tmp_beside(_sa_key()), _tmp_beside(_sa_pub())
    process.run_logged(
        server,
        [openssl, "genpkey", "-algorithm", "RSA", "-pkeyopt", "rsa_keygen_bits:2048", "-out", str(key_tmp)],
        what="generating the service-account signing key",
        log=log,
        timeout=60,
    )
    process.run_logged(
        server,
        [openssl, "pkey", "-in", str(key_tmp), "-pubout", "-out", str(pub_tmp)],
        what="extracting the service-account public key",
        log=log,
        timeout=60,
    )
    key_tmp.chmod(0o600)
    key_tmp.replace(_sa_key())
    pub_tmp.replace(_sa_pub())


def _kubeconfig(user: str, token: str) -> dict[str, Any]:
    # JSON is YAML, so every kubeconfig reader takes it and no YAML library is needed here.
    cluster = {"server": apiserver_url(), "certificate-authority": str(serving_ca())}
    context = {"cluster": "devstack", "user": user, "namespace": "default"}
    return {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [{"name": "devstack", "cluster": cluster}],
        "users": [{"name": user, "user": {"token": token}}],
        "contexts": [{"name": "devstack", "context": context}],
        "current-context": "devstack",
    }


# --- talking to the servers ---------------------------------------------------------------------


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


def _admin_request(method: str, path: str, body: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """One admin call to the apiserver (stdlib only, so starting kwok needs no client library)."""
    request = urllib.request.Request(  # noqa: S310 - our loopback apiserver
        apiserver_url() + path,
        method=method,
        data=json.dumps(body).encode() if body is not None else None,
        headers={
            "Authorization": f"Bearer {_tokens().get('admin', '')}",
            "Accept": "application/json",
            "Content-Type": "application/merge-patch+json" if method == "PATCH" else "application/json",
        },
    )
    context = ssl.create_default_context(cafile=str(serving_ca()))
    with urllib.request.urlopen(request, timeout=10, context=context) as resp:  # noqa: S310
        answer: dict[str, Any] = json.load(resp)
    return answer


def fake_node_manifest(name: str = FAKE_NODE) -> dict[str, Any]:
    """A Node kwok plays: the annotation opts it in, the labels look like a kubelet's."""
    return {
        "apiVersion": "v1",
        "kind": "Node",
        "metadata": {
            "name": name,
            "annotations": {FAKE_NODE_ANNOTATION: "fake"},
            "labels": {
                "type": "kwok",
                "kubernetes.io/hostname": name,
                "kubernetes.io/os": "linux",
                "kubernetes.io/arch": "amd64",
            },
        },
    }


def _node_ready(node: Mapping[str, Any]) -> bool:
    conditions = node.get("status", {}).get("conditions") or []
    return any(c.get("type") == "Ready" and c.get("status") == "True" for c in conditions)


def _typed_node_ready(node: V1Node) -> bool:
    conditions = (node.status.conditions if node.status else None) or []
    return any(c.type == "Ready" and c.status == "True" for c in conditions)


def _register_fake_node(name: str) -> None:
    manifest = fake_node_manifest(name)
    try:
        _admin_request("POST", "/api/v1/nodes", manifest)
    except urllib.error.HTTPError as exc:
        if exc.code != 409:
            reason = f"could not create the fake node {name}: HTTP {exc.code} {exc.reason}"
            raise StackError("kwok", reason) from None
        # It exists (an earlier run): make sure it is still ours to play.
        _admin_request("PATCH", f"/api/v1/nodes/{name}", _opt_in_patch())


def _opt_in_patch() -> dict[str, Any]:
    return {"metadata": {"annotations": {FAKE_NODE_ANNOTATION: "fake"}}}


def ensure_fake_node(
    api: ApiClient | str | os.PathLike[str] | None = None,
    name: str = FAKE_NODE,
    *,
    timeout: float = 60.0,
) -> None:
    """Create (or adopt) a Node that kwok plays, and wait until it is Ready.

    ``api`` is a ``kubernetes.client.ApiClient`` or a kubeconfig path (default: the admin one).
    Pods without a nodeSelector land on any Ready fake node.
    """
    from kubernetes import client, config

    if isinstance(api, client.ApiClient):
        _ensure_fake_node_with(api, name, timeout)
        return
    kubeconfig = str(api or kubeconfig_path())
    owned = config.new_client_from_config(config_file=kubeconfig)
    try:
        _ensure_fake_node_with(owned, name, timeout)
    finally:
        owned.close()


def _ensure_fake_node_with(api: ApiClient, name: str, timeout: float) -> None:
    from kubernetes import client
    from kubernetes.client.exceptions import ApiException

    core = client.CoreV1Api(api)
    try:
        core.create_node(client.V1Node(metadata=client.V1ObjectMeta(**fake_node_manifest(name)["metadata"])))
    except ApiException as exc:
        if exc.status != 409:
            raise
        core.patch_node(name, _opt_in_patch())
    try:
        wait.until(
            f"fake node {name} Ready",
            lambda: _typed_node_ready(core.read_node(name)),
            timeout=timeout,
            not_yet=transient.kube,
        )
    except wait.WaitTimeout:
        reason = f"fake node {name} not Ready within {timeout:.0f}s (is kwok running?)"
        raise StackError("kwok", reason, paths.log_file("kwok")) from None


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

    def ports(self) -> Sequence[int]:
        return [ports.port("KUBE_APISERVER")]

    def provision(self) -> None:
        build(self.name, KUBERNETES)
        process.require_tool(self.name, "openssl", _OPENSSL_HINT)

    def start(self) -> None:
        _ensure_credentials(self.name)
        _cert_dir().mkdir(parents=True, exist_ok=True)
        process.spawn(
            self.name,
            [
                str(build(self.name, KUBERNETES) / "kube-apiserver"),
                f"--etcd-servers=http://127.0.0.1:{ports.port('ETCD')}",
                "--bind-address=127.0.0.1",
                # Needed where there is no default route; also what the `kubernetes` Service points at.
                "--advertise-address=127.0.0.1",
                f"--secure-port={ports.port('KUBE_APISERVER')}",
                f"--cert-dir={_cert_dir()}",
                f"--token-auth-file={_token_file()}",
                "--authorization-mode=Node,RBAC",
                "--service-account-issuer=https://kubernetes.default.svc.cluster.local",
                f"--service-account-key-file={_sa_pub()}",
                f"--service-account-signing-key-file={_sa_key()}",
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
        build(self.name, KUBERNETES)

    def start(self) -> None:
        _ensure_credentials(self.name)
        kubeconfig = kubeconfig_path(self.name)
        process.spawn(
            self.name,
            [
                str(build(self.name, KUBERNETES) / "kube-controller-manager"),
                *_component_flags(kubeconfig, ports.port("KUBE_CONTROLLER_MANAGER")),
                f"--service-account-private-key-file={_sa_key()}",
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
        build(self.name, KUBERNETES)

    def start(self) -> None:
        _ensure_credentials(self.name)
        process.spawn(
            self.name,
            [
                str(build(self.name, KUBERNETES) / "kube-scheduler"),
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
        build(self.name, KWOK)
        missing = [p.name for p in _stage_files() if not p.is_file()]
        if missing:
            where = paths.source_dir() / "kwok"
            raise StackError(self.name, f"kwok stage files missing from {where}: {', '.join(missing)}")

    def start(self) -> None:
        _ensure_credentials(self.name)
        try:
            _register_fake_node(FAKE_NODE)
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
                *(f"--config={stage}" for stage in _stage_files()),
            ],
        )

    def probe(self) -> bool:
        if not process.http_ok(f"http://127.0.0.1:{ports.port('KWOK')}/healthz"):
            return False
        return _node_ready(_admin_request("GET", f"/api/v1/nodes/{FAKE_NODE}"))

    def env(self) -> Mapping[str, str]:
        return {"DEVSTACK_KWOK_NODE": FAKE_NODE}

    def describe(self) -> str:
        return f"http://127.0.0.1:{ports.port('KWOK')}/healthz, fake node {FAKE_NODE}"


_STAGES = ("node-initialize", "node-heartbeat", "pod-ready", "pod-complete", "pod-delete")


def _stage_files() -> list[Path]:
    return [paths.source_dir() / "kwok" / f"{name}.yaml" for name in _STAGES]


SERVERS: list[Server] = [Etcd(), KubeApiserver(), KubeControllerManager(), KubeScheduler(), Kwok()]
