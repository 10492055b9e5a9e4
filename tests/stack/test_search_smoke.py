"""Both search engines are real: template, bulk, search and aggregations give exact answers.

One test body runs against Elasticsearch (official client) and OpenSearch (opensearch-py) with the
same calls, as the event sink will make them.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from elasticsearch import Elasticsearch
from opensearchpy import OpenSearch

from devstack.search import ELASTICSEARCH_VERSION, OPENSEARCH_VERSION

pytestmark = pytest.mark.stack

DAY0 = datetime(2024, 5, 1, tzinfo=UTC)


def _event(i: int) -> dict[str, Any]:
    """Event-like documents with known counts: 50/30/15/5 per reason, 20 per day over 5 days."""
    if i < 50:
        reason, message = "Scheduled", f"Successfully assigned default/pod-{i} to node-{i % 3}"
    elif i < 80:
        reason, message = "Pulled", f"Container image for pod-{i} already present on machine"
    elif i < 95:
        reason, message = "BackOff", f"Back-off restarting failed container in pod-{i}"
    else:
        reason, message = "Failed", f"Error: image pull failed for pod-{i}"
    ts = DAY0 + timedelta(days=i // 20, hours=i % 20, minutes=i)
    return {"reason": reason, "message": message, "ts": ts.isoformat().replace("+00:00", "Z"), "n": i}


def _template(name: str) -> dict[str, Any]:
    return {
        "index_patterns": [f"{name}-*"],
        "priority": 500,
        "template": {
            # One node: a replica could never be assigned and the index would stay yellow.
            "settings": {"number_of_shards": 1, "number_of_replicas": 0},
            "mappings": {
                "dynamic": "strict",
                "properties": {
                    "reason": {"type": "keyword"},
                    "message": {"type": "text"},
                    "ts": {"type": "date"},
                    "n": {"type": "integer"},
                },
            },
        },
    }


def test_template_bulk_search_and_aggregations(search_client: Any, index_name: str) -> None:
    client = search_client
    assert client.indices.put_index_template(name=index_name, body=_template(index_name))["acknowledged"]

    index = f"{index_name}-000001"
    lines: list[dict[str, Any]] = []
    for i in range(100):
        lines += [{"index": {"_index": index, "_id": f"uid-{i}"}}, _event(i)]
    result = client.bulk(body=lines)
    assert result["errors"] is False, [item for item in result["items"] if item["index"].get("error")][:3]
    assert [item["index"]["status"] for item in result["items"]] == [201] * 100
    client.indices.refresh(index=index)

    # The template, not dynamic mapping, shaped the index.
    mapping = client.indices.get_mapping(index=index)[index]["mappings"]["properties"]
    assert {k: v["type"] for k, v in mapping.items()} == {
        "reason": "keyword",
        "message": "text",
        "ts": "date",
        "n": "integer",
    }
    health = client.cluster.health(index=index, wait_for_status="green")
    assert health["status"] == "green"
    assert client.count(index=index)["count"] == 100

    # Full-text query: "failed" occurs in the BackOff and Failed messages only.
    found = client.search(
        index=index,
        body={
            "query": {"match": {"message": "failed"}},
            "size": 100,
            "sort": [{"n": "asc"}],
            "track_total_hits": True,
        },
    )
    assert found["hits"]["total"] == {"value": 20, "relation": "eq"}
    assert [hit["_id"] for hit in found["hits"]["hits"]] == [f"uid-{i}" for i in range(80, 100)]

    aggs = client.search(
        index=index,
        body={
            "size": 0,
            "track_total_hits": True,
            "aggs": {
                "reasons": {"terms": {"field": "reason", "size": 10}},
                "per_day": {
                    "date_histogram": {"field": "ts", "calendar_interval": "1d", "time_zone": "UTC"},
                    "aggs": {"reasons": {"terms": {"field": "reason"}}},
                },
            },
        },
    )
    assert aggs["hits"]["total"]["value"] == 100
    reasons = {b["key"]: b["doc_count"] for b in aggs["aggregations"]["reasons"]["buckets"]}
    assert reasons == {"Scheduled": 50, "Pulled": 30, "BackOff": 15, "Failed": 5}
    days = aggs["aggregations"]["per_day"]["buckets"]
    assert [b["key_as_string"][:10] for b in days] == [f"2024-05-0{d}" for d in range(1, 6)]
    assert [b["doc_count"] for b in days] == [20] * 5
    last_day = {b["key"]: b["doc_count"] for b in days[4]["reasons"]["buckets"]}
    assert last_day == {"BackOff": 15, "Failed": 5}

    # Re-indexing a document under the same id replaces it: the sink's at-least-once delivery relies on it.
    again = client.bulk(body=[{"index": {"_index": index, "_id": "uid-0"}}, _event(0)], refresh="true")
    assert again["items"][0]["index"]["result"] == "updated"
    assert client.count(index=index)["count"] == 100


def test_each_client_reaches_its_own_engine(es_client: Elasticsearch, os_client: OpenSearch) -> None:
    es_health = es_client.cluster.health()
    os_health = os_client.cluster.health()
    assert es_health["cluster_name"] == os_health["cluster_name"] == "devstack"
    assert es_health["number_of_nodes"] == os_health["number_of_nodes"] == 1
    assert es_client.ping()
    assert os_client.ping()
    # `GET /` on Elasticsearch is devstack's stand-in for the unpublished rest-root module.
    es_info = es_client.info()
    assert (es_info["version"]["number"], es_info["version"]["build_flavor"]) == (ELASTICSEARCH_VERSION, "default")
    assert es_info["cluster_uuid"] == es_client.cluster.state(metric="metadata")["metadata"]["cluster_uuid"]
    os_version = os_client.info()["version"]
    assert (os_version["distribution"], os_version["number"]) == ("opensearch", OPENSEARCH_VERSION)
