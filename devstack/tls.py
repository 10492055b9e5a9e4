"""A private CA and the certificates and secrets of the stack's secured endpoints.

Generated once with the ``openssl`` command into ``<state>/tls`` and reused: a CA, a server
certificate for 127.0.0.1/localhost (Kafka's TLS listeners and the HTTPS proxy in front of the
search engines), a client certificate, and the credentials clients use (``credentials()``).
"""

from __future__ import annotations

import base64
import json
import os
import secrets
from pathlib import Path

from devstack import paths, process

DAYS = "825"


def tls_dir() -> Path:
    return paths.state_dir() / "tls"


def ca_cert() -> Path:
    return tls_dir() / "ca.crt"


def server_cert() -> Path:
    return tls_dir() / "server.crt"


def server_key() -> Path:
    return tls_dir() / "server.key"


def client_cert() -> Path:
    return tls_dir() / "client.crt"


def client_key() -> Path:
    return tls_dir() / "client.key"


def ensure(server: str) -> None:
    """Create the CA, the server and the client certificates unless they exist."""
    directory = tls_dir()
    if client_key().exists() and server_key().exists():
        return
    openssl = process.require_tool(server, "openssl", "apt-get install openssl")
    directory.mkdir(parents=True, exist_ok=True)
    os.chmod(directory, 0o700)
    log = paths.log_file("tls")

    def run(*args: str) -> None:
        process.run_logged(server, [openssl, *args], what=f"openssl {args[0]}", log=log, cwd=directory, timeout=60)

    run("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", "ca.key", "-out", "ca.crt",
        "-days", DAYS, "-subj", "/CN=k8s-event-streams devstack CA")  # fmt: skip
    (directory / "server.ext").write_text(
        "basicConstraints=CA:FALSE\nkeyUsage=digitalSignature,keyEncipherment\n"
        "extendedKeyUsage=serverAuth\nsubjectAltName=IP:127.0.0.1,DNS:localhost\n"
    )
    (directory / "client.ext").write_text(
        "basicConstraints=CA:FALSE\nkeyUsage=digitalSignature,keyEncipherment\nextendedKeyUsage=clientAuth\n"
    )
    for name, subject in (("server", "/CN=localhost"), ("client", "/CN=devstack-client")):
        run("req", "-newkey", "rsa:2048", "-nodes", "-keyout", f"{name}.key", "-out", f"{name}.csr", "-subj", subject)
        run("x509", "-req", "-in", f"{name}.csr", "-CA", "ca.crt", "-CAkey", "ca.key", "-CAcreateserial",
            "-out", f"{name}.crt", "-days", DAYS, "-extfile", f"{name}.ext")  # fmt: skip
    for key in directory.glob("*.key"):
        os.chmod(key, 0o600)


def credentials() -> dict[str, str]:
    """User names, passwords and an API key for the secured endpoints, made once."""
    path = tls_dir() / "credentials.json"
    if path.exists():
        return dict(json.loads(path.read_text()))
    values = {
        "kafka_user": "devstack",
        "kafka_password": secrets.token_urlsafe(18),
        "search_user": "devstack",
        "search_password": secrets.token_urlsafe(18),
        "search_api_key": base64.b64encode(f"devstack:{secrets.token_urlsafe(24)}".encode()).decode(),
    }
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as out:
        json.dump(values, out)
    return values


def client_env() -> dict[str, str]:
    """What clients need for the secured endpoints; passwords only as files."""
    creds = credentials()
    secret_dir = tls_dir() / "secrets"
    secret_dir.mkdir(parents=True, exist_ok=True)
    env = {
        "DEVSTACK_TLS_CA": str(ca_cert()),
        "DEVSTACK_TLS_CLIENT_CERT": str(client_cert()),
        "DEVSTACK_TLS_CLIENT_KEY": str(client_key()),
        "DEVSTACK_KAFKA_USER": creds["kafka_user"],
        "DEVSTACK_SEARCH_USER": creds["search_user"],
    }
    for name in ("kafka_password", "search_password", "search_api_key"):
        file = secret_dir / name
        if not file.exists():
            fd = os.open(file, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
            with os.fdopen(fd, "w") as out:
                out.write(creds[name] + "\n")
        env[f"DEVSTACK_{name.upper()}_FILE"] = str(file)
    return env
