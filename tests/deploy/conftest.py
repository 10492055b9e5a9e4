"""Fixtures of the deployment tests that talk to the API server."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

import pytest
from kubernetes import client
from kubernetes.client.exceptions import ApiException

from tests.fixtures.stack import unique_name

# The shared proofs assert outside test modules: let pytest show their values when they fail.
pytest.register_assert_rewrite("tests.deploy.rbac")


@pytest.fixture
def other_namespace(kube_client: client.ApiClient) -> Iterator[str]:
    """A second fresh namespace: one an installed worker may read Events in but must not touch otherwise."""
    core = client.CoreV1Api(kube_client)
    name = unique_name("other")
    core.create_namespace(client.V1Namespace(metadata=client.V1ObjectMeta(name=name)))
    yield name
    with contextlib.suppress(ApiException):
        core.delete_namespace(name)
