"""The daily indices' composable index template: the document's mapping, as the sink and Logstash write it."""

from __future__ import annotations

from typing import Any

from streams.config.settings import Settings

TEMPLATE_NAME_SUFFIX = "-template"

_KEYWORD = {"type": "keyword", "ignore_above": 1024}
_DATE = {"type": "date"}
_OBJECT_REF = {
    "properties": {
        name: _KEYWORD for name in ("kind", "namespace", "name", "uid", "apiVersion", "resourceVersion", "fieldPath")
    }
}


def index_template(settings: Settings) -> dict[str, Any]:
    """The composable index template of the daily indices ``<prefix>-*``."""
    return {
        "index_patterns": [f"{settings.search.index_prefix}-*"],
        "priority": 200,
        "_meta": {"managed_by": "k8s-event-streams"},
        "template": {
            "settings": {
                "number_of_shards": 1,
                "number_of_replicas": settings.search.index_replicas,
                "refresh_interval": settings.search.index_refresh_interval,
            },
            "mappings": {
                # Fields the API adds later still get indexed, as keywords rather than full text.
                "dynamic_templates": [
                    {"strings_as_keywords": {"match_mapping_type": "string", "mapping": _KEYWORD}},
                ],
                "properties": {
                    "@timestamp": _DATE,
                    "cluster": _KEYWORD,
                    "kind": _KEYWORD,
                    "apiVersion": _KEYWORD,
                    "metadata": {
                        "properties": {
                            "name": _KEYWORD,
                            "namespace": _KEYWORD,
                            "uid": _KEYWORD,
                            "resourceVersion": _KEYWORD,
                            "creationTimestamp": _DATE,
                            "deletionTimestamp": _DATE,
                            # Arbitrary keys would grow the mapping without bound: kept, not indexed.
                            "labels": {"type": "object", "enabled": False},
                            "annotations": {"type": "object", "enabled": False},
                        }
                    },
                    "involvedObject": _OBJECT_REF,
                    "related": _OBJECT_REF,
                    "reason": _KEYWORD,
                    "type": _KEYWORD,
                    "action": _KEYWORD,
                    "message": {
                        "type": "text",
                        # Keyword terms are capped at 32766 bytes; longer messages stay searchable as text.
                        "fields": {"keyword": {"type": "keyword", "ignore_above": 8191}},
                    },
                    "source": {"properties": {"component": _KEYWORD, "host": _KEYWORD}},
                    "reportingComponent": _KEYWORD,
                    "reportingInstance": _KEYWORD,
                    "firstTimestamp": _DATE,
                    "lastTimestamp": _DATE,
                    "eventTime": _DATE,
                    "count": {"type": "long"},
                    "series": {"properties": {"count": {"type": "long"}, "lastObservedTime": _DATE}},
                    # Enrichment (K8SEV_ENRICH): labels as "key=value" terms, so label keys never become fields.
                    "involvedObjectMeta": {
                        "properties": {
                            "labels": _KEYWORD,
                            "owners": {"properties": {"kind": _KEYWORD, "name": _KEYWORD, "uid": _KEYWORD}},
                            "ownerRefs": _KEYWORD,
                        }
                    },
                },
            },
        },
    }


def template_name(settings: Settings) -> str:
    return settings.search.index_prefix + TEMPLATE_NAME_SUFFIX
