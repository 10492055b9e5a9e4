"""The Logstash pipeline writes the worker's documents: topic, index, id, @timestamp order, body.

Logstash cannot run here, so the pipeline file is parsed (regular expressions over its text) and
compared with the worker's own definitions, which it must not drift from.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from datetime import UTC, datetime

import pytest

from streams.config.settings import Settings
from streams.core import events
from tests.deploy.helpers import COMPOSE_DIR, defaults

pytestmark = pytest.mark.deploy

PIPELINE = COMPOSE_DIR / "logstash" / "pipeline" / "k8s-event.conf"
# ${NAME:default}: Logstash's substitution of environment variables.
_VARIABLE = re.compile(r"\$\{(?P<name>[A-Za-z_][A-Za-z0-9_]*)(?::(?P<default>[^}]*))?\}")
# A field reference: [a][b][c].
_FIELD_REF = re.compile(r"^(?:\[[^\[\]]+\])+$")


def code() -> str:
    """The pipeline without comments (no # occurs inside its strings)."""
    return re.sub(r"(?m)#.*$", "", PIPELINE.read_text())


def section(name: str) -> str:
    """The body of the top-level ``input``, ``filter`` or ``output`` block."""
    text = code()
    start = re.search(rf"(?m)^{name}\s*\{{", text)
    assert start, f"no {name} block"
    depth, index = 0, start.end() - 1
    for index in range(start.end() - 1, len(text)):
        if text[index] == "{":
            depth += 1
        elif text[index] == "}":
            depth -= 1
            if depth == 0:
                break
    return text[start.end() : index]


def option(block: str, name: str) -> str:
    match = re.search(rf"\b{name}\s*=>\s*(\"[^\"]*\"|\[[^\]]*\]|\w+)", block)
    assert match, f"{name} is not set"
    return match.group(1)


def unquote(value: str) -> str:
    assert value.startswith('"') and value.endswith('"'), value
    return value[1:-1]


def substitute(text: str) -> str:
    """``${VAR:default}`` as Logstash resolves it with VAR unset."""
    return _VARIABLE.sub(lambda m: m.group("default") or "", text)


def field_path(reference: str) -> tuple[str, ...]:
    assert _FIELD_REF.match(reference), reference
    return tuple(reference[1:-1].split("]["))


def sprintf(template: str, event: Mapping[str, object]) -> str:
    """Logstash's %{[a][b]} references, resolved against an event."""

    def value(match: re.Match[str]) -> str:
        node: object = event
        for key in field_path(match.group(1)):
            assert isinstance(node, Mapping)
            node = node[key]
        return str(node)

    return re.sub(r"%\{(\[[^}]+\])\}", value, template)


@pytest.fixture(scope="module")
def settings() -> Settings:
    return Settings.from_env({})


def test_braces_balance() -> None:
    text = re.sub(r'"[^"]*"', '""', code())
    depth = 0
    for char in text:
        depth += {"{": 1, "}": -1}.get(char, 0)
        assert depth >= 0
    assert depth == 0


def test_every_k8sev_variable_is_a_worker_setting_with_its_default() -> None:
    known = defaults()
    found = [m for m in _VARIABLE.finditer(code()) if m.group("name").startswith("K8SEV_")]
    assert {m.group("name") for m in found} == {"K8SEV_TOPIC", "K8SEV_INDEX_PREFIX", "K8SEV_CLUSTER"}
    for match in found:
        assert match.group("default") == known[match.group("name")], match.group(0)


def test_input_reads_the_raw_topic_as_json_in_its_own_group(settings: Settings) -> None:
    kafka = section("input")
    assert re.match(r"\s*kafka\s*\{", kafka)
    topics = option(kafka, "topics")
    assert substitute(topics) == f'["{settings.kafka.raw_topic}"]'
    assert re.search(r"codec\s*=>\s*json\b", kafka)
    group = unquote(option(kafka, "group_id"))
    assert group != settings.app_id, "sharing the worker's consumer group would split the records between them"
    assert unquote(option(kafka, "auto_offset_reset")) == "earliest"


def test_timestamp_fields_in_the_workers_order() -> None:
    filters = section("filter")
    matched = [field_path(m) for m in re.findall(r'match\s*=>\s*\[\s*"([^"]+)"\s*,\s*"ISO8601"\s*\]', filters)]
    assert tuple(matched) == events.TIME_FIELDS
    # Each date filter runs only if its field is set and no earlier one parsed: "first parseable".
    guards = re.findall(r"if\s+([^{]+)\{\s*date\s*\{", filters)
    assert len(guards) == len(events.TIME_FIELDS)
    for index, (guard, path) in enumerate(zip(guards, events.TIME_FIELDS, strict=True)):
        reference = "".join(f"[{key}]" for key in path)
        assert reference in guard
        assert ("![@metadata][k8sev_time]" in guard) == (index > 0), guard
    assert len(re.findall(r'add_field\s*=>\s*\{\s*"\[@metadata\]\[k8sev_time\]"', filters)) == len(events.TIME_FIELDS)
    assert len(re.findall(r"tag_on_failure\s*=>\s*\[\s*\]", filters)) == len(events.TIME_FIELDS)


def test_the_body_is_the_event_plus_timestamp_and_cluster(settings: Settings) -> None:
    filters = section("filter")
    removed = re.search(r"remove_field\s*=>\s*\[([^\]]*(?:\][^\]]*)*?)\]\s*\n", filters)
    assert removed, "no remove_field"
    assert '"[metadata][managedFields]"' in removed.group(1)
    assert '"@version"' in removed.group(1), "Logstash's own field would make the documents differ"
    cluster = re.search(r'add_field\s*=>\s*\{\s*"cluster"\s*=>\s*"([^"]+)"\s*\}', filters)
    assert cluster and substitute(cluster.group(1)) == settings.kube.cluster


def test_records_the_worker_dead_letters_are_not_indexed() -> None:
    filters = section("filter")
    for reason in ("invalid_json", "missing_uid", "missing_resource_version", "no_event_time"):
        assert f'"[@metadata][reject]" => "{reason}"' in filters
    output = section("output")
    assert re.match(r"\s*if\s+\[@metadata\]\[reject\]\s*\{", output)
    assert output.index("stdout") < output.index("elasticsearch")


def test_output_index_and_document_id_are_the_workers(settings: Settings) -> None:
    output = section("output")
    es = output[output.index("elasticsearch") :]
    index = unquote(option(es, "index"))
    prefix, _, day = substitute(index).partition("-%{+")
    assert prefix == settings.search.index_prefix
    # Joda's YYYY.MM.dd of @timestamp, in UTC: the worker's <prefix>-YYYY.MM.dd of the event's time.
    when = datetime(2024, 2, 29, 23, 59, 59, tzinfo=UTC)
    joda = {"YYYY": "%Y", "MM": "%m", "dd": "%d"}
    assert day.endswith("}")
    strftime = re.sub(r"YYYY|MM|dd", lambda m: joda[m.group(0)], day[:-1])
    assert f"{prefix}-{when:{strftime}}" == events.index_name(settings.search.index_prefix, when)

    document_id = unquote(option(es, "document_id"))
    sample = {"metadata": {"uid": "4f6e-11", "resourceVersion": "12345", "name": "x"}, "reason": "Started"}
    assert sprintf(document_id, sample) == events.doc_id(sample)
    # The template is the worker's; neither ILM nor a data stream may take the index name over.
    assert option(es, "manage_template") == "false"
    assert option(es, "ilm_enabled") == "false"
    assert unquote(option(es, "data_stream")) == "false"
    assert unquote(option(es, "action")) == "index"
