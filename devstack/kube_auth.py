"""Credentials of the local control plane: bearer tokens, service-account keys, kubeconfigs, the CA.

kube-apiserver serves HTTPS with a self-signed pair it generates in its ``--cert-dir``; that file is the
CA of every kubeconfig and the controller-manager's ``--root-ca-file``. Clients authenticate with static
bearer tokens (``--token-auth-file``, generated once per state directory): the admin and kwok in
``system:masters``, the controller-manager and scheduler as their well-known users, so RBAC and the Node
authorizer stay on as in a real cluster. The service-account key pair (``openssl``) is generated once
per state directory too; the controller-manager signs tokens with it and runs each controller under its
own service account.

A second API server (``kube-apiserver-2``) generates its own self-signed pair the same way in its own
cert directory and shares the token file and the service-account keys, so every token works on both.
Behind the TCP load balancer (:mod:`devstack.kube_lb`) a client meets either certificate: its
kubeconfig trusts both (``both_ca``).
"""

from __future__ import annotations

import json
import secrets
import ssl
import urllib.error
import urllib.request
from pathlib import Path
from typing import TYPE_CHECKING, Any

from devstack import paths, ports, process

if TYPE_CHECKING:
    from collections.abc import Mapping

OPENSSL_HINT = "install OpenSSL (apt-get install openssl); it generates the service-account keys"

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


def token_file() -> Path:
    return _kube_dir() / "tokens.csv"


def sa_key() -> Path:
    return _kube_dir() / "service-account.key"


def sa_pub() -> Path:
    return _kube_dir() / "service-account.pub"


#: Server name -> its port's name in :mod:`devstack.ports`.
_PORTS = {
    "kube-apiserver": "KUBE_APISERVER",
    "kube-apiserver-2": "KUBE_APISERVER_2",
    "kube-apiserver-lb": "KUBE_APISERVER_LB",
}


def cert_dir(server: str = "kube-apiserver") -> Path:
    return paths.data_dir(server) / "pki"


def serving_ca(server: str = "kube-apiserver") -> Path:
    """An apiserver's self-signed serving certificate (with its CA): the clients' trust anchor."""
    return cert_dir(server) / "apiserver.crt"


def both_ca() -> Path:
    """Both API servers' certificates in one file: what a client behind the load balancer trusts."""
    return _kube_dir() / "apiservers-ca.crt"


def apiserver_url(server: str = "kube-apiserver") -> str:
    """``https://127.0.0.1:<port>`` of an API server, or of the load balancer (``kube-apiserver-lb``)."""
    return f"https://127.0.0.1:{ports.port(_PORTS[server])}"


def server_kubeconfig(server: str) -> Path:
    """The admin's kubeconfig for one API server or the load balancer (``admin.kubeconfig`` is the first's)."""
    return kubeconfig_path() if server == "kube-apiserver" else _kube_dir() / f"admin-{server}.kubeconfig"


def write_server_kubeconfig(server: str, ca: Path) -> Path:
    """The admin's kubeconfig for ``server`` (made at every start, as the others are)."""
    path = server_kubeconfig(server)
    token = _tokens()["admin"]
    user = _IDENTITIES["admin"][0]
    _write_private(path, json.dumps(_kubeconfig(user, token, apiserver_url(server), ca), indent=2) + "\n")
    return path


def write_both_ca() -> Path:
    """Concatenate both servers' certificates (each file holds a certificate and the CA that signed it)."""
    text = "".join(serving_ca(server).read_text() for server in ("kube-apiserver", "kube-apiserver-2"))
    _write_private(both_ca(), text)
    return both_ca()


def ensure_credentials(server: str) -> None:
    """Tokens, service-account keys and kubeconfigs: made once, kubeconfigs refreshed every start."""
    directory = _kube_dir()
    directory.mkdir(parents=True, exist_ok=True)
    directory.chmod(0o700)
    tokens = _tokens()
    if set(tokens) != set(_IDENTITIES):
        tokens = {name: secrets.token_hex(24) for name in _IDENTITIES}
        rows = [f'{tokens[n]},{user},{user},"{groups}"' for n, (user, groups) in _IDENTITIES.items()]
        _write_private(token_file(), "\n".join(rows) + "\n")
    if not (sa_key().is_file() and sa_pub().is_file()):
        _make_service_account_keys(server)
    for name, (user, _groups) in _IDENTITIES.items():
        config = _kubeconfig(user, tokens[name], apiserver_url(), serving_ca())
        _write_private(kubeconfig_path(name), json.dumps(config, indent=2) + "\n")


def _tokens() -> dict[str, str]:
    """Kubeconfig name -> bearer token, as written to the token file."""
    by_user = {user: name for name, (user, _groups) in _IDENTITIES.items()}
    try:
        text = token_file().read_text()
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
    openssl = process.require_tool(server, "openssl", OPENSSL_HINT)
    log = paths.log_file(server)
    key_tmp, pub_tmp = _tmp_beside(sa_key()), _tmp_beside(sa_pub())
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
    key_tmp.replace(sa_key())
    pub_tmp.replace(sa_pub())


def _kubeconfig(user: str, token: str, server: str, ca: Path) -> dict[str, Any]:
    # JSON is YAML, so every kubeconfig reader takes it and no YAML library is needed here.
    cluster = {"server": server, "certificate-authority": str(ca)}
    context = {"cluster": "devstack", "user": user, "namespace": "default"}
    return {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [{"name": "devstack", "cluster": cluster}],
        "users": [{"name": user, "user": {"token": token}}],
        "contexts": [{"name": "devstack", "context": context}],
        "current-context": "devstack",
    }


def https_ok(url: str, cafile: Path | None = None, timeout: float = 2.0) -> bool:
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


def admin_request(
    method: str, path: str, body: Mapping[str, Any] | None = None, *, server: str = "kube-apiserver"
) -> dict[str, Any]:
    """One admin call to an apiserver (stdlib only, so starting kwok needs no client library)."""
    answer: dict[str, Any] = json.loads(_admin_call(method, path, body, server, "application/json"))
    return answer


def admin_text(path: str, *, server: str = "kube-apiserver") -> str:
    """An admin GET of a text endpoint (``/metrics``) of one API server."""
    return _admin_call("GET", path, None, server, "text/plain").decode()


def _admin_call(method: str, path: str, body: Mapping[str, Any] | None, server: str, accept: str) -> bytes:
    request = urllib.request.Request(  # noqa: S310 - our loopback apiserver
        apiserver_url(server) + path,
        method=method,
        data=json.dumps(body).encode() if body is not None else None,
        headers={
            "Authorization": f"Bearer {_tokens().get('admin', '')}",
            "Accept": accept,
            "Content-Type": "application/merge-patch+json" if method == "PATCH" else "application/json",
        },
    )
    context = ssl.create_default_context(cafile=str(serving_ca(server)))
    with urllib.request.urlopen(request, timeout=10, context=context) as resp:  # noqa: S310
        data: bytes = resp.read()
    return data
