"""The real :class:`streams.kube.api.KubeApi`, over the blocking ``kubernetes`` client: the only module importing it.

Responses are read raw (``_preload_content=False``) and parsed with ``json``, never into client
models: model building costs more than the whole rest of the path and would reshape the document.
Every request has a connect and a read timeout, so no call can hang a thread for good.
"""

from __future__ import annotations

import contextlib
import json
import os
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import urllib3
from kubernetes import client, config
from kubernetes.client.exceptions import ApiException
from kubernetes.watch.watch import iter_resp_lines

from streams.kube.api import HTTP_CONFLICT, HTTP_NOT_FOUND, ApiError, Disconnected, Identity, IdleTimeout

T = TypeVar("T")

#: (connect, read) seconds for a LIST page and a Lease call.
REQUEST_TIMEOUT = (10.0, 60.0)
LEASE_TIMEOUT = (5.0, 10.0)


def api_client(kubeconfig: Path | None) -> client.ApiClient:
    """An ApiClient from a kubeconfig file, in-cluster credentials, or ``~/.kube/config``."""
    if kubeconfig is not None:
        return config.new_client_from_config(config_file=str(kubeconfig))
    if os.environ.get("KUBERNETES_SERVICE_HOST"):
        configuration = client.Configuration()
        config.load_incluster_config(client_configuration=configuration)
        return client.ApiClient(configuration)
    return config.new_client_from_config()


@dataclass(frozen=True)
class Kubeconfig:
    """A kubeconfig's cluster and credentials as kubectl reads them (certificate data, exec plugins,
    OIDC), for a caller that speaks HTTP itself (``kubectl eventlog`` through the service proxy)."""

    host: str
    ca_file: str | None
    cert_file: str | None
    key_file: str | None
    verify_ssl: bool
    tls_server_name: str | None
    #: The context chosen (``--context`` or the current one): its name and its user's name.
    context: str
    user: str
    #: ``Bearer ...`` or None, read anew each call: an exec plugin's or OIDC token is refreshed by the loader.
    authorization: Callable[[], str | None]


class KubeconfigError(Exception):
    """The kubeconfig cannot be read; the message names why."""


def read_kubeconfig(files: str, context: str | None, token: str | None) -> Kubeconfig:
    """``files``: paths joined by ``os.pathsep`` (as ``KUBECONFIG``); ``token`` replaces the user's credentials."""
    from kubernetes.config.config_exception import ConfigException

    configuration = client.Configuration()
    try:
        contexts, current = config.list_kube_config_contexts(config_file=files)
        config.load_kube_config(
            config_file=files, context=context, client_configuration=configuration, persist_config=False
        )
    except (ConfigException, OSError) as exc:
        raise KubeconfigError(str(exc)) from None
    chosen = next((c for c in contexts if c.get("name") == context), None) if context else current
    if token:
        # Both keys: the client names it BearerToken (37 on), authorization before.
        configuration.api_key = dict.fromkeys(("BearerToken", "authorization"), f"Bearer {token}")
        configuration.api_key_prefix = {}
        configuration.refresh_api_key_hook = None

    def authorization() -> str | None:
        value: str | None = configuration.get_api_key_with_prefix("BearerToken", alias="authorization")
        return value

    return Kubeconfig(
        host=str(configuration.host),
        ca_file=configuration.ssl_ca_cert or None,
        cert_file=configuration.cert_file or None,
        key_file=configuration.key_file or None,
        verify_ssl=bool(configuration.verify_ssl),
        tls_server_name=getattr(configuration, "tls_server_name", None),
        context=str((chosen or {}).get("name", "")),
        user=str(dict((chosen or {}).get("context") or {}).get("user", "")),
        authorization=authorization,
    )


def _api_error(exc: ApiException) -> ApiError:
    message = ""
    with contextlib.suppress(Exception):
        message = str(json.loads(exc.body).get("message") or "")
    return ApiError(int(exc.status or 0), str(exc.reason or ""), message[:500])


def _translated(call: Callable[[], T]) -> T:
    try:
        return call()
    except ApiException as exc:
        raise _api_error(exc) from None
    except urllib3.exceptions.ReadTimeoutError as exc:
        raise IdleTimeout(str(exc)) from None
    except (urllib3.exceptions.HTTPError, OSError) as exc:
        raise Disconnected(f"{type(exc).__name__}: {exc}") from None


class _Response:
    def __init__(self, response: Any) -> None:
        self._response = response

    def json(self) -> dict[str, Any]:
        body = _translated(lambda: self._response.data)
        value = json.loads(body)
        if not isinstance(value, dict):
            raise Disconnected(f"expected a JSON object, got {type(value).__name__}")
        return value

    def notifications(self) -> Iterator[dict[str, Any]]:
        lines = iter_resp_lines(self._response)
        while True:
            line = _translated(lambda: next(lines, None))
            if line is None:
                return
            if line and not line.isspace():
                yield json.loads(line)

    def close(self) -> None:
        # shutdown() unblocks a read in progress on another thread; close() frees the socket.
        with contextlib.suppress(Exception):
            self._response.shutdown()
        with contextlib.suppress(Exception):
            self._response.close()
        with contextlib.suppress(Exception):
            self._response.release_conn()


class KubernetesApi:
    """:class:`streams.kube.api.KubeApi` over one ``kubernetes`` ApiClient."""

    def __init__(self, api: client.ApiClient) -> None:
        self._api = api
        self._core = client.CoreV1Api(api)
        self._coordination = client.CoordinationV1Api(api)

    @classmethod
    def from_kubeconfig(cls, kubeconfig: Path | None) -> KubernetesApi:
        return cls(api_client(kubeconfig))

    def _events(self, namespace: str | None, **kwargs: Any) -> _Response:
        kwargs["_preload_content"] = False
        if namespace:
            return _Response(_translated(lambda: self._core.list_namespaced_event(namespace, **kwargs)))
        return _Response(_translated(lambda: self._core.list_event_for_all_namespaces(**kwargs)))

    def list_events(self, namespace: str | None, *, limit: int, continue_token: str | None) -> _Response:
        kwargs: dict[str, Any] = {"limit": limit, "_request_timeout": REQUEST_TIMEOUT}
        if continue_token:
            kwargs["_continue"] = continue_token
        return self._events(namespace, **kwargs)

    def watch_events(
        self, namespace: str | None, *, resource_version: str, timeout_seconds: int, idle_timeout: float
    ) -> _Response:
        return self._events(
            namespace,
            watch=True,
            resource_version=resource_version,
            allow_watch_bookmarks=True,
            timeout_seconds=timeout_seconds,
            _request_timeout=(REQUEST_TIMEOUT[0], idle_timeout),
        )

    def _metadata(
        self, path: str, as_kind: str, query: list[tuple[str, Any]], timeout: tuple[float, float]
    ) -> _Response:
        # The API server answers with metadata only when asked for it by media type; no fallback to
        # whole objects, so a server that cannot do it says 406 instead of sending bodies.
        headers = {"Accept": f"application/json;as={as_kind};g=meta.k8s.io;v=v1"}
        return _Response(_translated(lambda: self._get_raw(path, query, headers, timeout)))

    def _get_raw(
        self, path: str, query: list[tuple[str, Any]], headers: dict[str, str], timeout: tuple[float, float]
    ) -> Any:
        """GET ``path`` unparsed (the urllib3 response), on the ApiClient of either generator generation."""
        if not hasattr(self._api, "param_serialize"):  # the older generated client (kubernetes < 35)
            return self._api.call_api(
                path,
                "GET",
                query_params=query,
                header_params=headers,
                auth_settings=["BearerToken"],
                _return_http_data_only=True,
                _preload_content=False,
                _request_timeout=timeout,
            )
        request = self._api.param_serialize(
            "GET", path, query_params=query, header_params=headers, auth_settings=["BearerToken"]
        )
        response = self._api.call_api(*request, _request_timeout=timeout)
        if not 200 <= response.status <= 299:
            response.read()
            raise ApiException.from_response(http_resp=response, body=None, data=None)
        return response.response

    def list_metadata(self, path: str, *, limit: int, continue_token: str | None) -> _Response:
        query: list[tuple[str, Any]] = [("limit", limit)]
        if continue_token:
            query.append(("continue", continue_token))
        return self._metadata(path, "PartialObjectMetadataList", query, REQUEST_TIMEOUT)

    def watch_metadata(
        self, path: str, *, resource_version: str, timeout_seconds: int, idle_timeout: float
    ) -> _Response:
        query: list[tuple[str, Any]] = [
            ("watch", "true"),
            ("resourceVersion", resource_version),
            ("allowWatchBookmarks", "true"),
            ("timeoutSeconds", timeout_seconds),
        ]
        return self._metadata(path, "PartialObjectMetadata", query, (REQUEST_TIMEOUT[0], idle_timeout))

    def read_lease(self, namespace: str, name: str) -> dict[str, Any] | None:
        try:
            response = _translated(
                lambda: self._coordination.read_namespaced_lease(
                    name, namespace, _preload_content=False, _request_timeout=LEASE_TIMEOUT
                )
            )
        except ApiError as exc:
            if exc.status == HTTP_NOT_FOUND:
                return None
            raise
        return _Response(response).json()

    def create_lease(self, namespace: str, body: dict[str, Any]) -> bool:
        try:
            _translated(
                lambda: self._coordination.create_namespaced_lease(
                    namespace, body, _preload_content=False, _request_timeout=LEASE_TIMEOUT
                )
            )
        except ApiError as exc:
            if exc.status == HTTP_CONFLICT:
                return False
            raise
        return True

    def replace_lease(self, namespace: str, name: str, body: dict[str, Any]) -> bool:
        try:
            _translated(
                lambda: self._coordination.replace_namespaced_lease(
                    name, namespace, body, _preload_content=False, _request_timeout=LEASE_TIMEOUT
                )
            )
        except ApiError as exc:
            if exc.status == HTTP_CONFLICT:
                return False
            raise
        return True


#: (connect, read) seconds for a TokenReview or SubjectAccessReview: a page waits on it.
REVIEW_TIMEOUT = (5.0, 10.0)


class KubernetesReviews:
    """:class:`streams.explorer.access.Reviewer`: TokenReviews and SubjectAccessReviews, as the worker.

    The worker's ServiceAccount needs ``create`` on ``tokenreviews.authentication.k8s.io`` and
    ``subjectaccessreviews.authorization.k8s.io`` and nothing more. A token is sent only in the
    TokenReview's body, never logged; an API error names its status, never the token.
    """

    def __init__(self, api: client.ApiClient) -> None:
        self._authentication = client.AuthenticationV1Api(api)
        self._authorization = client.AuthorizationV1Api(api)

    @classmethod
    def from_kubeconfig(cls, kubeconfig: Path | None) -> KubernetesReviews:
        return cls(api_client(kubeconfig))

    def token_review(self, token: str) -> Identity | None:
        body = {"apiVersion": "authentication.k8s.io/v1", "kind": "TokenReview", "spec": {"token": token}}
        answer = _Response(
            _translated(
                lambda: self._authentication.create_token_review(
                    body, _preload_content=False, _request_timeout=REVIEW_TIMEOUT
                )
            )
        ).json()
        status = answer.get("status") or {}
        user = status.get("user") or {}
        if not status.get("authenticated") or not user.get("username"):
            return None
        extra = tuple(sorted((str(k), tuple(map(str, v or ()))) for k, v in (user.get("extra") or {}).items()))
        return Identity(
            str(user["username"]), str(user.get("uid") or ""), tuple(map(str, user.get("groups") or ())), extra
        )

    def may(self, who: Identity, verb: str, group: str, resource: str, namespace: str) -> bool:
        spec: dict[str, Any] = {
            "user": who.username,
            "groups": list(who.groups),
            "resourceAttributes": {"verb": verb, "group": group, "resource": resource, "namespace": namespace},
        }
        if who.uid:
            spec["uid"] = who.uid
        if who.extra:
            spec["extra"] = {k: list(v) for k, v in who.extra}
        body = {"apiVersion": "authorization.k8s.io/v1", "kind": "SubjectAccessReview", "spec": spec}
        answer = _Response(
            _translated(
                lambda: self._authorization.create_subject_access_review(
                    body, _preload_content=False, _request_timeout=REVIEW_TIMEOUT
                )
            )
        ).json()
        return bool((answer.get("status") or {}).get("allowed"))
