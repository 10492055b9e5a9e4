"""Credentials of the local control plane: bearer tokens, service-account keys, kubeconfigs, and
one stdlib admin call to the apiserver.

Clients authenticate with static bearer tokens (``--token-auth-file``, generated once per state
directory): the admin and kwok in ``system:masters``, the controller-manager and scheduler as their
well-known users, so RBAC and the Node authorizer stay on as in a real cluster. The service-account
key pair (``openssl``) is generated once per state directory too. The apiserver's self-signed
serving certificate is the CA of every kubeconfig.
"""

from __future__ import annotations

import json
import secrets
import ssl
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


def cert_dir() -> Path:
    return paths.data_dir("kube-apiserver") / "pki"


def serving_ca() -> Path:
    """The apiserver's self-signed serving certificate (with its CA): the clients' trust anchor."""
    return cert_dir() / "apiserver.crt"


def apiserver_url() -> str:
    return f"https://127.0.0.1:{ports.port('KUBE_APISERVER')}"


def ensure_credentials(server: str) -> None:
    """Tokens, service-account keys and kubeconfigs: made once, kubeconfigs refreshed every start."""
    directory = _kube_dir()
    directory.mkdir(parents=True, exist_ok=True)
    directory.chmod(0o700)
    tokens = read_tokens()
    if set(tokens) != set(_IDENTITIES):
        tokens = {name: secrets.token_hex(24) for name in _IDENTITIES}
        rows = [f'{tokens[n]},{user},{user},"{groups}"' for n, (user, groups) in _IDENTITIES.items()]
        _write_private(token_file(), "\n".join(rows) + "\n")
    if not (sa_key().is_file() and sa_pub().is_file()):
        _make_service_account_keys(server)
    for name, (user, _groups) in _IDENTITIES.items():
        _write_private(kubeconfig_path(name), json.dumps(_kubeconfig(user, tokens[name]), indent=2) + "\n")


def read_tokens() -> dict[str, str]:
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


def admin_request(method: str, path: str, body: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """One admin call to the apiserver (stdlib only, so starting kwok needs no client library)."""
    request = urllib.request.Request(  # noqa: S310 - our loopback apiserver
        apiserver_url() + path,
        method=method,
        data=json.dumps(body).encode() if body is not None else None,
        headers={
            "Authorization": f"Bearer {read_tokens().get('admin', '')}",
            "Accept": "application/json",
            "Content-Type": "application/merge-patch+json" if method == "PATCH" else "application/json",
        },
    )
    context = ssl.create_default_context(cafile=str(serving_ca()))
    with urllib.request.urlopen(request, timeout=10, context=context) as resp:  # noqa: S310
        answer: dict[str, Any] = json.load(resp)
    return answer
