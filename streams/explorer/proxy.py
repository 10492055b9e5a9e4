"""``kubectl eventlog`` through the API server's service proxy: where the worker is, what to send, what a refusal means.

The command reaches the explorer's JSON API at
``<server>/api/v1/namespaces/<ns>/services/<name>:<port>/proxy/ui/api/<what>``, so RBAC applies twice:
the API server lets the caller through only with ``get`` on ``services/proxy`` for that Service, and
the worker shows only the namespaces where the caller may ``list events``.

The API server authenticates the caller and then drops the ``Authorization`` header before it
proxies the request: the worker would see nobody. So the caller's bearer token is sent a second time,
in :data:`TOKEN_HEADER`, which the worker reads only with ``K8SEV_EXPLORER_AUTH=kubernetes`` and
checks with the same TokenReview as a bearer token. A client certificate proves nothing to the
worker (the API server terminates TLS), so a kubeconfig without a token is refused here, before
anything is sent, with what to do instead.

Pure: no Kubernetes client, no I/O.
"""

from __future__ import annotations

import json
import re
import urllib.parse
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

TOKEN_HEADER = "X-Eventlog-Token"  # noqa: S105 - a header's name, not a secret
# Where k8s/ puts the workers' web port: Service k8s-event-streams, port "web", in k8s-event-streams.
# The chart names its Service after the release (<release>-k8s-event-streams, or the release's name
# when that contains the chart's): its NOTES.txt prints the K8SEV_EVENTLOG_SERVICE line to use.
DEFAULT_NAMESPACE = "k8s-event-streams"
DEFAULT_SERVICE = "k8s-event-streams"
DEFAULT_PORT = "web"
SERVICE_VARIABLE = "K8SEV_EVENTLOG_SERVICE"
APIS = ("search", "histogram", "timeline", "top")

_DNS_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$")
_PORT_NAME = re.compile(r"^[a-z0-9]([-a-z0-9]{0,13}[a-z0-9])?$")
_SERVICE_TEXT = re.compile(r"^(?:(?P<namespace>[^/:]+)/)?(?P<name>[^/:]+)(?::(?P<port>[^/:]+))?$")


class TargetError(ValueError):
    """A Service, namespace or port that cannot be one (a usage error)."""


class NoToken(ValueError):
    """The kubeconfig's user has no bearer token to show the worker."""


@dataclass(frozen=True)
class Target:
    """The worker's Service: ``namespace/name:port`` (a port's name or number)."""

    namespace: str = DEFAULT_NAMESPACE
    name: str = DEFAULT_SERVICE
    port: str = DEFAULT_PORT

    def __post_init__(self) -> None:
        if not _DNS_LABEL.match(self.namespace):
            raise TargetError(f"--service-namespace {self.namespace!r}: not a namespace name")
        if not _DNS_LABEL.match(self.name) or self.name[0].isdigit():
            raise TargetError(f"--service {self.name!r}: not a Service name")
        number = self.port.isdigit() and 1 <= int(self.port) <= 65535
        name = not self.port.isdigit() and _PORT_NAME.match(self.port)
        if not number and not name:
            raise TargetError(f"--service-port {self.port!r}: a port's name or number")

    def __str__(self) -> str:
        return f"{self.namespace}/{self.name}:{self.port}"


def target(
    env: Mapping[str, str], *, namespace: str | None = None, name: str | None = None, port: str | None = None
) -> Target:
    """The flags over ``K8SEV_EVENTLOG_SERVICE`` (``[namespace/]name[:port]``) over the defaults."""
    base = Target()
    text = env.get(SERVICE_VARIABLE, "").strip()
    if text:
        match = _SERVICE_TEXT.match(text)
        if match is None:
            raise TargetError(f"{SERVICE_VARIABLE}={text!r}: expected [namespace/]name[:port]")
        try:
            base = Target(match["namespace"] or base.namespace, match["name"], match["port"] or base.port)
        except TargetError as exc:
            raise TargetError(f"{SERVICE_VARIABLE}={text!r}: {str(exc).partition(': ')[2]}") from None
    return Target(namespace or base.namespace, name or base.name, port or base.port)


def api_path(where: Target, what: str) -> str:
    """The service proxy's path to the explorer's ``/ui/api/<what>`` (every part already validated)."""
    if what not in APIS:
        raise ValueError(f"no explorer API {what!r}")
    return f"/api/v1/namespaces/{where.namespace}/services/{where.name}:{where.port}/proxy/ui/api/{what}"


def api_url(server: str, where: Target, what: str, params: Mapping[str, str]) -> str:
    """``server`` (the kubeconfig cluster's, maybe with a path: a Rancher-style front) plus the proxy path."""
    query = urllib.parse.urlencode(sorted(params.items()))
    return server.rstrip("/") + api_path(where, what) + (f"?{query}" if query else "")


def headers(token: str, *, worker: bool = True) -> dict[str, str]:
    """What the command sends: the token for the API server, and (``worker``) again for the worker behind it."""
    sent = {"Authorization": f"Bearer {token}", "Accept": "application/json"}
    return {**sent, TOKEN_HEADER: token} if worker else sent


def bearer(authorization: str | None) -> str:
    """The token of the kubeconfig loader's ``Bearer <token>``; "" when there is none."""
    scheme, _, value = (authorization or "").strip().partition(" ")
    return value.strip() if scheme.lower() == "bearer" else ""


def token_for_worker(flag: str | None, authorization: str | None, *, user: str, context: str, client_cert: bool) -> str:
    """The token to show the worker: ``--token``, else the kubeconfig user's; none: :class:`NoToken` saying why."""
    if flag:
        return flag
    token = bearer(authorization)
    if token:
        return token
    how = "signs in with a client certificate" if client_cert else "has no bearer token"
    raise NoToken(
        f"the kubeconfig's user {user!r} (context {context!r}) {how}, and the API server passes on no"
        " proof of who you are to the explorer behind its service proxy: it needs a bearer token. Pass"
        ' one with --token "$(kubectl create token <serviceaccount> -n <namespace>)" (a ServiceAccount'
        " with list on events where you read them), use a kubeconfig whose user has a token, or, with"
        " the search engine's credentials, read the archive directly with --es-url"
    )


def group_versions(body: bytes) -> list[str]:
    """An APIGroup's versions (``/apis/<group>``), the preferred first."""
    try:
        group = json.loads(body)
        preferred = str((group.get("preferredVersion") or {}).get("groupVersion") or "")
        versions = [str(v.get("groupVersion")) for v in group.get("versions") or [] if v.get("groupVersion")]
    except (ValueError, AttributeError, TypeError):
        return []
    return ([preferred] if preferred else []) + [v for v in versions if v != preferred]


def kind_in(resource: str, body: bytes) -> str | None:
    """The kind an APIResourceList names ``resource`` by: its plural, singular, a short name or the kind."""
    try:
        resources = json.loads(body).get("resources") or []
    except (ValueError, AttributeError):
        return None
    wanted = resource.lower()
    for item in resources:
        if not isinstance(item, dict) or "/" in str(item.get("name", "")) or not item.get("kind"):
            continue  # a subresource (pods/log), or not a resource at all
        names = {str(item.get("name")), str(item.get("singularName") or ""), str(item["kind"])}
        names |= {str(n) for n in item.get("shortNames") or []}
        if wanted in {n.lower() for n in names if n}:
            return str(item["kind"])
    return None


def refusal(status: int, body: bytes, where: Target, server: str) -> str:
    """One line for a non-200 answer: the API server's own (a ``Status``) or the worker's (``{"error"}``)."""
    try:
        answer: Any = json.loads(body)
    except (ValueError, UnicodeDecodeError):
        answer = None
    text = body.decode("utf-8", "replace").strip()[:300]
    if isinstance(answer, dict) and answer.get("kind") == "Status":
        message = str(answer.get("message") or answer.get("reason") or text)[:300]
        if status == 401:
            return (
                f"the API server at {server} does not accept your credentials ({message}): the token is"
                " forged, expired or revoked; get a new one (kubectl create token, or log in again)"
            )
        if status == 403:
            return (
                f"the API server refuses you the explorer's service proxy: {message}. Ask for a Role in"
                f" namespace {where.namespace} with get on services/proxy, resourceNames"
                f" [{where.name}:{where.port}] (docs/explorer.md)"
            )
        if status == 404:
            return (
                f"no Service {where.name} in namespace {where.namespace} at {server} ({message}): say where"
                " the workers are with --service, --service-namespace and --service-port, or"
                f" {SERVICE_VARIABLE}=namespace/name:port"
            )
        if status == 503:
            return f"the API server reaches no worker behind Service {where}: {message}"
        return f"the API server answered {status}: {message}"
    if isinstance(answer, dict) and "error" in answer:
        message = str(answer["error"])[:500]
        if status == 401:
            return (
                f"the explorer behind {where} refused the token ({message}); is its K8SEV_EXPLORER_AUTH"
                " kubernetes? A shared token or basic auth works only directly (port-forward), not here"
            )
        return f"the explorer behind {where} answered {status}: {message}"
    return f"{server} answered {status} for Service {where}: {text or '(no body)'}"
