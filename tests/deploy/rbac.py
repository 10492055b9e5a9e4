"""Proofs on the real API server that an installed worker may do what it needs and nothing more.

Shared by the kustomize (k8s/) and the Helm (k8s/helm/) tests, so both installs face the same probes:
a TokenRequest token of the worker's ServiceAccount lists and watches Events in every namespace and uses
a Lease in its own, creates token and access reviews (the explorer's auth), and is refused (403) Secrets,
Pods, creating Events and other namespaces' Leases.
A pod from the Deployment's template passes the "restricted" Pod Security Standard.

The chart's split topology gives each role its account: the ingest pods' token faces the same probes
without the reviews (``explorer=False``: it serves no explorer, so they are refused), and the streams
pods' token (:func:`assert_streams_privilege`) may create the reviews and nothing else.
"""

from __future__ import annotations

import base64
import copy
import json
from pathlib import Path
from typing import Any

import yaml
from kubernetes import client
from kubernetes.client.exceptions import ApiException

from tests.deploy.helpers import load_yaml

RESTRICTED = {
    "pod-security.kubernetes.io/enforce": "restricted",
    "pod-security.kubernetes.io/enforce-version": "latest",
}


def admin_cluster(kubeconfig: str) -> tuple[str, bytes]:
    """The API server's URL and CA bundle, from the admin kubeconfig of the stack."""
    config = load_yaml(Path(kubeconfig))
    context_name = config["current-context"]
    context = next(c["context"] for c in config["contexts"] if c["name"] == context_name)
    cluster = next(c["cluster"] for c in config["clusters"] if c["name"] == context["cluster"])
    if "certificate-authority-data" in cluster:
        ca = base64.b64decode(cluster["certificate-authority-data"])
    else:
        ca = Path(cluster["certificate-authority"]).read_bytes()
    return cluster["server"], ca


def service_account_token(core: client.CoreV1Api, name: str, namespace: str) -> str:
    """A token for the ServiceAccount from the TokenRequest API (what the kubelet mounts in its pods)."""
    request = client.AuthenticationV1TokenRequest(spec=client.V1TokenRequestSpec(audiences=[], expiration_seconds=3600))
    token: str = core.create_namespaced_service_account_token(name, namespace, request).status.token
    return token


def write_token_kubeconfig(path: Path, server: str, ca: bytes, token: str, namespace: str) -> Path:
    path.write_text(
        yaml.safe_dump(
            {
                "apiVersion": "v1",
                "kind": "Config",
                "clusters": [
                    {
                        "name": "stack",
                        "cluster": {"server": server, "certificate-authority-data": base64.b64encode(ca).decode()},
                    }
                ],
                "users": [{"name": "sa", "user": {"token": token}}],
                "contexts": [{"name": "sa", "context": {"cluster": "stack", "user": "sa", "namespace": namespace}}],
                "current-context": "sa",
            }
        )
    )
    path.chmod(0o600)
    return path


def token_client(server: str, ca_file: Path, token: str) -> client.ApiClient:
    configuration = client.Configuration()
    configuration.host = server
    configuration.ssl_ca_cert = str(ca_file)
    configuration.api_key = {"authorization": token}
    configuration.api_key_prefix = {"authorization": "Bearer"}
    return client.ApiClient(configuration)


def status_of(call: Any) -> int:
    """The HTTP status of a call made with ``_preload_content=False`` (the body is read, not deserialized)."""
    try:
        response = call()
    except ApiException as exc:
        return int(exc.status)
    response.read()
    response.release_conn()
    return int(response.status)


def _review_calls(sa: client.ApiClient) -> dict[str, Any]:
    raw = {"_preload_content": False}
    return {
        # The explorer's K8SEV_EXPLORER_AUTH=kubernetes asks the API server who a token is and what it may do.
        "create a token review": lambda: client.AuthenticationV1Api(sa).create_token_review(
            {"spec": {"token": "not-a-token"}}, **raw
        ),
        "create a subject access review": lambda: client.AuthorizationV1Api(sa).create_subject_access_review(
            {"spec": {"user": "nobody", "resourceAttributes": {"verb": "list", "resource": "events"}}}, **raw
        ),
    }


def _judge(allowed: dict[str, Any], refused: dict[str, Any]) -> None:
    outcome = {what: status_of(call) for what, call in allowed.items()}
    denied = {what: status for what, status in outcome.items() if not 200 <= status < 300}
    assert denied == {}, f"the worker's token was refused what it needs: {denied}"
    outcome = {what: status_of(call) for what, call in refused.items()}
    granted = {what: status for what, status in outcome.items() if status != 403}
    assert granted == {}, f"the worker's token was not refused (403) these: {granted}"


def assert_streams_privilege(sa: client.ApiClient, namespace: str, other: str) -> None:
    """``sa`` (a streams pod's token, split topology) may create the explorer's reviews, and is refused
    every Event, every Lease (its namespace's ingest Lease too), Secrets and Pods."""
    sa_core = client.CoreV1Api(sa)
    sa_events = client.EventsV1Api(sa)
    sa_leases = client.CoordinationV1Api(sa)
    raw = {"_preload_content": False}
    lease = {"metadata": {"name": "probe-streams"}, "spec": {"holderIdentity": "test"}}
    refused = {
        "list events, all namespaces": lambda: sa_core.list_event_for_all_namespaces(limit=5, **raw),
        "watch events, all namespaces": lambda: sa_core.list_event_for_all_namespaces(
            watch=True, timeout_seconds=1, **raw
        ),
        "list events in its namespace": lambda: sa_core.list_namespaced_event(namespace, limit=5, **raw),
        "list events in another namespace": lambda: sa_core.list_namespaced_event(other, limit=5, **raw),
        "list events.k8s.io events": lambda: sa_events.list_event_for_all_namespaces(limit=5, **raw),
        "read the ingest lease": lambda: sa_leases.read_namespaced_lease("k8s-event-streams-ingest", namespace, **raw),
        "create a lease": lambda: sa_leases.create_namespaced_lease(namespace, lease, **raw),
        "list leases": lambda: sa_leases.list_namespaced_lease(namespace, **raw),
        "list secrets in its namespace": lambda: sa_core.list_namespaced_secret(namespace, **raw),
        "list pods": lambda: sa_core.list_namespaced_pod(namespace, **raw),
    }
    _judge(_review_calls(sa), refused)


def assert_least_privilege(sa: client.ApiClient, namespace: str, other: str, *, explorer: bool = True) -> None:
    """``sa`` (the worker's token, its ServiceAccount in ``namespace``) may watch Events and its Lease, no more.

    ``other`` is another namespace, existing, that the token must not touch beyond reading Events.
    ``explorer``: the token's pods serve the explorer, so it may create the reviews (else: refused).
    """
    sa_core = client.CoreV1Api(sa)
    sa_events = client.EventsV1Api(sa)
    sa_leases = client.CoordinationV1Api(sa)
    raw = {"_preload_content": False}
    lease = {"metadata": {"name": "probe"}, "spec": {"holderIdentity": "test"}}
    event = {"metadata": {"name": "forged"}, "involvedObject": {"kind": "Pod", "name": "x"}, "reason": "Forged"}

    def current() -> dict[str, Any]:
        """The probe Lease as read back (an update must carry its resourceVersion)."""
        response = sa_leases.read_namespaced_lease("probe", namespace, **raw)
        body: dict[str, Any] = json.loads(response.data)
        body["spec"]["holderIdentity"] = "test-again"
        return body

    allowed = {
        "list events, all namespaces": lambda: sa_core.list_event_for_all_namespaces(limit=5, **raw),
        "watch events, all namespaces": lambda: sa_core.list_event_for_all_namespaces(
            watch=True, timeout_seconds=1, **raw
        ),
        "list events in another namespace": lambda: sa_core.list_namespaced_event(other, limit=5, **raw),
        "watch events in another namespace": lambda: sa_core.list_namespaced_event(
            other, watch=True, timeout_seconds=1, **raw
        ),
        "list events.k8s.io events": lambda: sa_events.list_event_for_all_namespaces(limit=5, **raw),
        "watch events.k8s.io events": lambda: sa_events.list_event_for_all_namespaces(
            watch=True, timeout_seconds=1, **raw
        ),
        "create its lease": lambda: sa_leases.create_namespaced_lease(namespace, lease, **raw),
        "read its lease": lambda: sa_leases.read_namespaced_lease("probe", namespace, **raw),
        "update its lease": lambda: sa_leases.replace_namespaced_lease("probe", namespace, current(), **raw),
    }
    refused = {
        "list secrets in its namespace": lambda: sa_core.list_namespaced_secret(namespace, **raw),
        "list secrets everywhere": lambda: sa_core.list_secret_for_all_namespaces(**raw),
        "exec into a pod": lambda: sa_core.connect_post_namespaced_pod_exec(
            "any-pod", namespace, command=["true"], stdout=True, **raw
        ),
        "list pods": lambda: sa_core.list_namespaced_pod(namespace, **raw),
        "create an event": lambda: sa_core.create_namespaced_event(other, event, **raw),
        "create an event in its namespace": lambda: sa_core.create_namespaced_event(namespace, event, **raw),
        "delete its lease": lambda: sa_leases.delete_namespaced_lease("probe", namespace, **raw),
        "read a lease in another namespace": lambda: sa_leases.read_namespaced_lease("probe", other, **raw),
        "create a lease in another namespace": lambda: sa_leases.create_namespaced_lease(other, lease, **raw),
        "list leases in another namespace": lambda: sa_leases.list_namespaced_lease("kube-system", **raw),
    }
    (allowed if explorer else refused).update(_review_calls(sa))
    _judge(allowed, refused)


def pod_from_template(template: dict[str, Any]) -> dict[str, Any]:
    metadata = {"generateName": "probe-", **copy.deepcopy(template["metadata"])}
    return {"apiVersion": "v1", "kind": "Pod", "metadata": metadata, "spec": copy.deepcopy(template["spec"])}


def assert_restricted_pod_security(core: client.CoreV1Api, namespace: str, template: dict[str, Any]) -> None:
    """A pod from ``template`` is admitted (dry run) in ``namespace``, which must enforce "restricted".

    The same pod with its container's securityContext removed is refused there: the namespace really
    enforces the standard, so the first answer means something.
    """
    labels = core.read_namespace(namespace).metadata.labels or {}
    assert labels.get("pod-security.kubernetes.io/enforce") == "restricted"
    core.create_namespaced_pod(namespace, pod_from_template(template), dry_run="All")
    loose = pod_from_template(template)
    for container in loose["spec"]["containers"]:
        container.pop("securityContext", None)
    try:
        core.create_namespaced_pod(namespace, loose, dry_run="All")
    except ApiException as exc:
        assert exc.status == 403 and "restricted" in str(exc.body), exc.body
    else:
        raise AssertionError(f"namespace {namespace} admitted a pod that violates the restricted standard")
