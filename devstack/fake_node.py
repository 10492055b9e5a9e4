"""Fake nodes that kwok plays: their manifest, their readiness, and creating (or adopting) one.

kwok plays only nodes annotated ``kwok.x-k8s.io/node: fake``, so a Node something else creates is
left alone and nothing kwok does can surprise a test that did not opt in.
"""

from __future__ import annotations

import urllib.error
from typing import TYPE_CHECKING, Any

from devstack import kube_auth, paths, transient, wait
from devstack.errors import StackError

if TYPE_CHECKING:
    import os
    from collections.abc import Mapping

    from kubernetes.client import ApiClient, V1Node

FAKE_NODE = "kwok-node-0"
FAKE_NODE_ANNOTATION = "kwok.x-k8s.io/node"


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


def node_ready(node: Mapping[str, Any]) -> bool:
    conditions = node.get("status", {}).get("conditions") or []
    return any(c.get("type") == "Ready" and c.get("status") == "True" for c in conditions)


def _typed_node_ready(node: V1Node) -> bool:
    conditions = (node.status.conditions if node.status else None) or []
    return any(c.type == "Ready" and c.status == "True" for c in conditions)


def register_fake_node(name: str) -> None:
    manifest = fake_node_manifest(name)
    try:
        kube_auth.admin_request("POST", "/api/v1/nodes", manifest)
    except urllib.error.HTTPError as exc:
        if exc.code != 409:
            reason = f"could not create the fake node {name}: HTTP {exc.code} {exc.reason}"
            raise StackError("kwok", reason) from None
        # It exists (an earlier run): make sure it is still ours to play.
        kube_auth.admin_request("PATCH", f"/api/v1/nodes/{name}", _opt_in_patch())


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
    kubeconfig = str(api or kube_auth.kubeconfig_path())
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
