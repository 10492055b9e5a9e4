"""The loopback ports of the local stack, away from the servers' defaults so a developer's own
Kafka or Elasticsearch on the usual ports does not collide. Each can be moved with
``DEVSTACK_PORT_<NAME>`` (for example ``DEVSTACK_PORT_KAFKA=39092``)."""

from __future__ import annotations

import os
from pathlib import Path

_DEFAULTS = {
    "KAFKA": 29092,
    "KAFKA_CONTROLLER": 29093,
    "KAFKA_SASL_SSL": 29094,
    "KAFKA_SSL": 29095,
    "ELASTICSEARCH_TLS": 29243,
    "OPENSEARCH_TLS": 29244,
    "ELASTICSEARCH": 29200,
    "ELASTICSEARCH_TRANSPORT": 29300,
    "OPENSEARCH": 29201,
    "OPENSEARCH_TRANSPORT": 29301,
    "ETCD": 22379,
    "ETCD_PEER": 22380,
    "KUBE_APISERVER": 26443,
    # The second API server on the same etcd, and the TCP load balancer in front of both.
    "KUBE_APISERVER_2": 26444,
    "KUBE_APISERVER_LB": 26445,
    "KUBE_CONTROLLER_MANAGER": 20257,
    "KUBE_SCHEDULER": 20259,
    "KWOK": 20247,
}


def port(name: str) -> int:
    value = os.environ.get(f"DEVSTACK_PORT_{name}")
    if value is None:
        return _DEFAULTS[name]
    if not value.isdigit() or not 0 < int(value) < 65536:
        raise ValueError(f"DEVSTACK_PORT_{name}={value!r} is not a TCP port")
    low, high = ephemeral_range()
    if low <= int(value) <= high:
        # Outgoing connections take their source ports from this range: a restarted server may
        # find its port taken by some client's socket and fail to bind.
        raise ValueError(f"DEVSTACK_PORT_{name}={value} lies in the kernel's ephemeral port range {low}-{high}")
    return int(value)


def ephemeral_range() -> tuple[int, int]:
    try:
        low, high = Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split()
        return int(low), int(high)
    except (OSError, ValueError):
        return 32768, 60999
