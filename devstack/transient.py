"""Which client errors mean "not yet" to a wait (``devstack.wait.until(..., not_yet=...)``).

A server of the local stack that is starting, restarting (fault tests) or still setting up
something just created answers with errors that go away by themselves: a search on a daily index
whose shard is still being allocated (503, ``no_shard_available_action_exception``), Kafka metadata
for a topic not yet propagated, an API server answering 429/5xx while it starts. Anything else (a
400, a 403, a bug in the probe) is a real failure and must not be waited out.
"""

from __future__ import annotations

from collections.abc import Callable

#: Search error types of a freshly created index, or of a node that is still recovering.
SEARCH_NOT_YET = frozenset(
    {
        "no_shard_available_action_exception",
        "index_not_found_exception",
        "unavailable_shards_exception",
        "cluster_block_exception",
        "node_not_connected_exception",
    }
)


def search(exc: Exception) -> bool:
    """Elasticsearch or OpenSearch: 503, a shard not yet there, the index not yet there, no connection."""
    import elastic_transport
    import elasticsearch
    import opensearchpy

    if isinstance(exc, elastic_transport.TransportError):  # connection refused/reset, timeouts
        return True
    if isinstance(exc, elasticsearch.ApiError):
        return exc.status_code in (429, 502, 503, 504) or str(exc.error) in SEARCH_NOT_YET
    if isinstance(exc, opensearchpy.ConnectionError | opensearchpy.ConnectionTimeout):
        return True
    if isinstance(exc, opensearchpy.TransportError):
        return exc.status_code in (429, 502, 503, 504) or str(exc.error) in SEARCH_NOT_YET
    return False


def kube(exc: Exception) -> bool:
    """The API server: 429 (throttled or still starting), 5xx, or no connection at all."""
    import urllib3
    from kubernetes.client.exceptions import ApiException

    if isinstance(exc, ApiException):
        # status 0: the client got no HTTP answer (connection refused while it restarts).
        return exc.status in (0, 429) or 500 <= (exc.status or 0) < 600
    return isinstance(exc, urllib3.exceptions.HTTPError | ConnectionError)


def kube_status(*statuses: int) -> Callable[[Exception], bool]:
    """:func:`kube`, and also these statuses (404 while a controller creates something, 409 when a
    read-modify-write raced another writer and is simply done again)."""
    from kubernetes.client.exceptions import ApiException

    def check(exc: Exception) -> bool:
        return kube(exc) or (isinstance(exc, ApiException) and exc.status in statuses)

    return check


def kafka(exc: Exception) -> bool:
    """aiokafka: the errors it marks retriable (no leader yet, unknown topic, coordinator loading,
    connection lost), and timeouts of a broker that is restarting."""
    from aiokafka import errors

    if isinstance(exc, errors.KafkaError):
        return bool(exc.retriable) or isinstance(exc, errors.KafkaTimeoutError)
    return isinstance(exc, ConnectionError | TimeoutError)


def http(exc: Exception) -> bool:
    """urllib against a local HTTP endpoint (the worker's web server): not listening yet, reset."""
    return isinstance(exc, OSError)


def any_of(*checks: Callable[[Exception], bool]) -> Callable[[Exception], bool]:
    return lambda exc: any(check(exc) for check in checks)
