"""compose/kibana/k8s-event.ndjson: well-formed saved objects over fields the index template maps."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from typing import Any

import pytest

from streams.config.settings import Settings
from streams.search.template import index_template
from tests.deploy.helpers import COMPOSE_DIR, DEPLOY_DOC

pytestmark = pytest.mark.deploy

NDJSON = COMPOSE_DIR / "kibana" / "k8s-event.ndjson"
COUNT_OF_RECORDS = "___records___"
AGGREGATABLE = {"keyword", "date", "long", "integer", "short", "byte", "double", "float", "boolean", "ip"}
# A field name before ":" in a KQL query.
_KQL_FIELD = re.compile(r"(?<![\w.@\"])([A-Za-z@_][\w.@]*)\s*:")


def saved_objects() -> list[dict[str, Any]]:
    lines = NDJSON.read_text().splitlines()
    assert lines and all(line.strip() for line in lines), "one JSON object per line, no blank lines"
    return [json.loads(line) for line in lines]


def mapped_fields(mapping: dict[str, Any], prefix: str = "") -> dict[str, str]:
    """Dotted field name -> type, multi-fields included; objects with ``enabled: false`` are not searchable."""
    out: dict[str, str] = {}
    for name, spec in mapping.get("properties", {}).items():
        path = f"{prefix}{name}"
        if "properties" in spec:
            out.update(mapped_fields(spec, f"{path}."))
        elif spec.get("enabled", True) is not False:
            out[path] = spec["type"]
        for sub, sub_spec in spec.get("fields", {}).items():
            out[f"{path}.{sub}"] = sub_spec["type"]
    return out


@pytest.fixture(scope="module")
def settings() -> Settings:
    return Settings.from_env({})


@pytest.fixture(scope="module")
def fields(settings: Settings) -> dict[str, str]:
    return mapped_fields(index_template(settings)["template"]["mappings"])


def of_type(kind: str) -> list[dict[str, Any]]:
    return [o for o in saved_objects() if o["type"] == kind]


def reference_names(obj: dict[str, Any]) -> set[str]:
    return {ref["name"] for ref in obj["references"]}


def search_source(obj: dict[str, Any]) -> dict[str, Any]:
    source: dict[str, Any] = json.loads(obj["attributes"]["kibanaSavedObjectMeta"]["searchSourceJSON"])
    return source


def lens_columns(obj: dict[str, Any]) -> Iterator[tuple[str, str, dict[str, Any]]]:
    """(layer id, column id, column) of a Lens object."""
    for layer_id, layer in obj["attributes"]["state"]["datasourceStates"]["formBased"]["layers"].items():
        for column_id, column in layer["columns"].items():
            yield layer_id, column_id, column


def test_objects_are_well_formed_and_unique() -> None:
    objects = saved_objects()
    keys = [(o["type"], o["id"]) for o in objects]
    assert len(keys) == len(set(keys))
    for obj in objects:
        assert {"id", "type", "attributes", "references"} <= set(obj), obj.get("id")
        assert obj["coreMigrationVersion"] and obj["typeMigrationVersion"]
        assert obj["attributes"]["title"]
    assert {o["type"] for o in objects} == {"index-pattern", "search", "lens", "dashboard"}


def test_every_reference_points_at_an_object_in_the_file() -> None:
    objects = saved_objects()
    present = {(o["type"], o["id"]) for o in objects}
    for obj in objects:
        names = [ref["name"] for ref in obj["references"]]
        assert len(names) == len(set(names)), f"{obj['id']}: duplicate reference names"
        for ref in obj["references"]:
            assert (ref["type"], ref["id"]) in present, f"{obj['id']} -> {ref['type']} {ref['id']}: not in the file"


def test_the_data_view_covers_the_daily_indices(settings: Settings, fields: dict[str, str]) -> None:
    (view,) = of_type("index-pattern")
    assert view["attributes"]["title"] == f"{settings.search.index_prefix}-*"
    assert view["attributes"]["timeFieldName"] == "@timestamp"
    assert fields["@timestamp"] == "date"


def test_saved_searches(fields: dict[str, str]) -> None:
    searches = {o["id"]: o for o in of_type("search")}
    assert search_source(searches["k8s-event-warnings"])["query"]["query"] == "type:Warning"
    history = search_source(searches["k8s-event-object-history"])
    assert "involvedObject.name" in {f["meta"]["key"] for f in history["filter"]}
    for obj in searches.values():
        source = search_source(obj)
        names = reference_names(obj)
        assert source["indexRefName"] in names
        for flt in source["filter"]:
            assert flt["meta"]["indexRefName"] in names
        used = set(obj["attributes"]["columns"]) | {field for field, _ in obj["attributes"]["sort"]}
        used |= {f["meta"]["key"] for f in source["filter"]}
        used |= {key for f in source["filter"] for key in f["query"]["match_phrase"]}
        used |= set(_KQL_FIELD.findall(source["query"]["query"]))
        unknown = used - set(fields)
        assert not unknown, f"{obj['id']} uses fields the index template does not map: {sorted(unknown)}"


def test_lens_visualizations_use_mapped_aggregatable_fields(fields: dict[str, str]) -> None:
    visualizations = of_type("lens")
    assert {o["id"] for o in visualizations} >= {
        "k8s-event-over-time",
        "k8s-event-top-reasons",
        "k8s-event-top-namespaces",
    }
    for obj in visualizations:
        state = obj["attributes"]["state"]
        layers = state["datasourceStates"]["formBased"]["layers"]
        for layer_id, layer in layers.items():
            assert f"indexpattern-datasource-layer-{layer_id}" in reference_names(obj)
            assert set(layer["columnOrder"]) == set(layer["columns"])
        columns = {column_id for _, column_id, _ in lens_columns(obj)}
        visualization = state["visualization"]
        accessors: set[str] = set()
        for layer in visualization.get("layers", [visualization]):
            accessors |= set(layer.get("accessors", []))
            accessors |= {layer[k] for k in ("xAccessor", "splitAccessor") if k in layer}
            accessors |= {c["columnId"] for c in layer.get("columns", [])}
        assert accessors == columns, f"{obj['id']}: accessors and columns differ"
        for _, column_id, column in lens_columns(obj):
            source = column["sourceField"]
            if column["operationType"] == "count":
                assert source == COUNT_OF_RECORDS
                continue
            assert source in fields, f"{obj['id']}.{column_id}: {source} is not mapped"
            assert fields[source] in AGGREGATABLE, f"{obj['id']}.{column_id}: {source} ({fields[source]}) cannot bucket"
            order = column.get("params", {}).get("orderBy", {})
            if order.get("type") == "column":
                assert order["columnId"] in columns
        used = set(_KQL_FIELD.findall(state["query"]["query"]))
        assert used <= set(fields)


def test_the_dashboard_shows_type_over_time_reasons_and_namespaces(fields: dict[str, str]) -> None:
    (dashboard,) = of_type("dashboard")
    objects = {(o["type"], o["id"]): o for o in saved_objects()}
    refs = {ref["name"]: ref for ref in dashboard["references"]}
    panels = json.loads(dashboard["attributes"]["panelsJSON"])
    shown = []
    for panel in panels:
        assert panel["gridData"]["i"] == panel["panelIndex"]
        assert panel["gridData"]["x"] >= 0 and panel["gridData"]["x"] + panel["gridData"]["w"] <= 48
        ref = refs[f"{panel['panelIndex']}:{panel['panelRefName']}"]
        assert ref["type"] == panel["type"]
        shown.append(objects[(ref["type"], ref["id"])])
    assert len(refs) == len(panels)
    bucketed = {column["sourceField"] for obj in shown if obj["type"] == "lens" for _, _, column in lens_columns(obj)}
    assert {"@timestamp", "type", "reason", "metadata.namespace"} <= bucketed
    assert ("search", "k8s-event-warnings") in {(o["type"], o["id"]) for o in shown}


def test_the_import_command_is_used_and_documented() -> None:
    setup = (COMPOSE_DIR / "setup" / "setup.sh").read_text()
    assert "/api/saved_objects/_import" in setup and "kbn-xsrf" in setup
    doc = DEPLOY_DOC.read_text()
    assert re.search(r"curl .*-X POST .*/api/saved_objects/_import\?overwrite=true", doc)
    assert "compose/kibana/k8s-event.ndjson" in doc
