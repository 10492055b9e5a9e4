"""The ingest filter: what each rule drops, what passes, and that no event can make it raise or stall."""

from __future__ import annotations

import fnmatch
import re
import time
from dataclasses import dataclass
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from streams.config.settings import Settings, SettingsError
from streams.ingest import filters
from streams.ingest.filters import FILTERS, EventFilter


def lease_chatter(**changes: Any) -> dict[str, Any]:
    """What kube-controller-manager writes each time it takes its Lease (core/v1 view, as watched)."""
    event: dict[str, Any] = {
        "kind": "Event",
        "apiVersion": "v1",
        "metadata": {"name": "kube-controller-manager.18a1", "namespace": "kube-system", "uid": "u1"},
        "involvedObject": {
            "kind": "Lease",
            "namespace": "kube-system",
            "name": "kube-controller-manager",
            "apiVersion": "coordination.k8s.io/v1",
        },
        "reason": "LeaderElection",
        "message": "host-1_0b2c5e3a-9d1f-4a57-8e43-1f2a3b4c5d6e became leader",
        "source": {"component": "kube-controller-manager"},
        "reportingComponent": "kube-controller-manager",
        "type": "Normal",
    }
    event.update(changes)
    return event


def pod_event(**changes: Any) -> dict[str, Any]:
    event: dict[str, Any] = {
        "metadata": {"name": "web-1.18a2", "namespace": "shop", "uid": "u2"},
        "involvedObject": {"kind": "Pod", "namespace": "shop", "name": "web-1"},
        "reason": "BackOff",
        "message": "Back-off restarting failed container web in pod web-1",
        "source": {"component": "kubelet", "host": "node-1"},
        "type": "Warning",
    }
    event.update(changes)
    return event


def test_nothing_configured_keeps_everything() -> None:
    keep = EventFilter()
    assert keep(lease_chatter()) is None and keep(pod_event()) is None and keep({}) is None


@pytest.mark.parametrize(
    ("rule", "dropped_by"),
    [
        ({"exclude_namespaces": ["kube-system"]}, "exclude_namespace"),
        ({"exclude_namespaces": ["kube-*"]}, "exclude_namespace"),
        ({"exclude_namespaces": ["kube-?ystem"]}, "exclude_namespace"),
        ({"exclude_kinds": ["Lease"]}, "exclude_kind"),
        ({"exclude_reasons": ["LeaderElection"]}, "exclude_reason"),
        ({"exclude_components": ["kube-controller-manager"]}, "exclude_component"),
        ({"exclude_message": r"became leader$|stopped leading$"}, "exclude_message"),
        ({"types": ["Warning"]}, "type"),
        ({"include_reasons": ["BackOff"]}, "include_reason"),
    ],
)
def test_each_rule_drops_the_lease_chatter_and_keeps_a_pods_backoff(rule: dict[str, Any], dropped_by: str) -> None:
    keep = EventFilter(**rule)
    assert keep(lease_chatter()) == dropped_by
    assert keep(pod_event()) is None


def test_near_misses_pass() -> None:
    keep = EventFilter(
        exclude_namespaces=["kube-*", "team-?"],
        exclude_kinds=["Lease"],
        exclude_components=["kube-controller-manager"],
        exclude_message="became leader$",
    )
    assert keep(pod_event(metadata={"namespace": "kube"})) is None  # kube-* needs the dash
    assert keep(pod_event(metadata={"namespace": "team-ab"})) is None  # ? is one character
    assert keep(pod_event(metadata={"namespace": "my-kube-system"})) is None  # globs match whole names
    assert keep(pod_event(involvedObject={"kind": "lease"})) is None  # kinds are exact
    assert keep(pod_event(source={"component": "kube-controller-manager-2"})) is None
    assert keep(pod_event(message="it became leader, then stopped")) is None  # $ anchors
    assert keep(pod_event(message="x BECAME LEADER")) is None  # case counts unless (?i)
    assert EventFilter(exclude_message="(?i)became leader$")(pod_event(message="x BECAME LEADER")) is not None


def test_a_component_is_matched_in_either_field() -> None:
    keep = EventFilter(exclude_components=["default-scheduler"])
    # The scheduler writes through events.k8s.io/v1: reportingController, read back as reportingComponent.
    scheduled = pod_event(source={}, reportingComponent="default-scheduler", reason="Scheduled")
    legacy = pod_event(source={"component": "default-scheduler"})
    assert keep(scheduled) == keep(legacy) == "exclude_component"
    assert keep(pod_event()) is None


def test_the_namespace_is_the_events_own_else_its_objects() -> None:
    keep = EventFilter(exclude_namespaces=["shop"])
    assert keep(pod_event()) == "exclude_namespace"
    assert keep(pod_event(metadata={"name": "x"})) == "exclude_namespace"
    assert keep(pod_event(metadata={"namespace": "other"})) is None


def test_rules_are_tried_in_the_documented_order() -> None:
    everything = EventFilter(
        types=["Warning"],
        exclude_reasons=["LeaderElection"],
        exclude_namespaces=["kube-system"],
        exclude_kinds=["Lease"],
        exclude_components=["kube-controller-manager"],
        exclude_message="leader",
    )
    assert everything(lease_chatter()) == "type"
    assert everything(lease_chatter(type="Warning")) == "exclude_reason"
    assert everything(lease_chatter(type="Warning", reason="Other")) == "exclude_namespace"


def test_the_settings_build_the_same_filter() -> None:
    env = {
        "K8SEV_EXCLUDE_NAMESPACES": "kube-*",
        "K8SEV_EXCLUDE_KINDS": "Lease,ConfigMap",
        "K8SEV_EXCLUDE_COMPONENTS": "kubelet",
        "K8SEV_EXCLUDE_MESSAGE": "became leader$",
    }
    keep = EventFilter.of(Settings.from_env(env).kube)
    assert keep(lease_chatter()) == "exclude_namespace"
    assert keep(lease_chatter(metadata={"namespace": "default"})) == "exclude_kind"
    assert keep(pod_event()) == "exclude_component"
    assert keep(pod_event(source={}, message="a became leader")) == "exclude_message"
    assert keep(pod_event(source={})) is None


def test_a_pattern_that_backtracks_exponentially_elsewhere_is_linear_here() -> None:
    # (a+)+$ against "aaa...ab": Python's re takes exponential time (never ending at this size).
    keep = EventFilter(exclude_message="(a+)+$")
    message = "a" * 200_000 + "b"
    started = time.perf_counter()
    assert keep(pod_event(message=message)) is None
    assert keep(pod_event(message="x" * 1_000_000 + "aaa")) == "exclude_message"
    assert time.perf_counter() - started < 2.0


def test_text_python_cannot_encode_as_utf8_neither_raises_nor_hides_a_match() -> None:
    keep = EventFilter(exclude_message="became leader")
    assert keep(pod_event(message="\ud800 became leader")) == "exclude_message"
    assert keep(pod_event(message="\udfff")) is None
    assert EventFilter(exclude_namespaces=["*x"])(pod_event(metadata={"namespace": "\ud800x"})) == "exclude_namespace"


def test_namespace_verdicts_are_remembered_within_a_bound() -> None:
    keep = EventFilter(exclude_namespaces=["team-*"])
    for i in range(filters.NAMESPACE_CACHE + 10):
        assert keep(pod_event(metadata={"namespace": f"team-{i}"})) == "exclude_namespace"
        assert keep(pod_event(metadata={"namespace": f"other-{i}"})) is None
    assert 0 < len(keep._namespace_verdicts) <= filters.NAMESPACE_CACHE


def test_a_regex_the_settings_would_refuse_is_refused_here_too() -> None:
    with pytest.raises(ValueError, match="RE2"):
        EventFilter(exclude_message="(?=lookahead)")
    with pytest.raises(ValueError, match="empty string"):
        EventFilter(exclude_message="x*")


# --- the settings: every bad filter value named, with the item at fault -----------------------------------------


def test_every_bad_filter_setting_is_named_in_one_error_with_its_bad_value() -> None:
    env = {
        "K8SEV_EXCLUDE_NAMESPACES": "default,kube-[a-z]*",
        "K8SEV_EXCLUDE_KINDS": "Lease,pod",
        "K8SEV_EXCLUDE_MESSAGE": "(?<!not )ready",
        "K8SEV_EVENT_TYPES": "Error",
    }
    with pytest.raises(SettingsError) as caught:
        Settings.from_env(env)
    problems = {problem.split("=", 1)[0]: problem for problem in caught.value.problems}
    assert set(problems) == set(env)
    assert "'kube-[a-z]*' is not a glob of namespace names" in problems["K8SEV_EXCLUDE_NAMESPACES"]
    assert "'pod'" in problems["K8SEV_EXCLUDE_KINDS"] and "'Pod'" in problems["K8SEV_EXCLUDE_KINDS"]
    assert "not an RE2 regular expression" in problems["K8SEV_EXCLUDE_MESSAGE"]
    assert "(?<!" in problems["K8SEV_EXCLUDE_MESSAGE"]


@pytest.mark.parametrize(
    ("variable", "value", "why"),
    [
        ("K8SEV_EXCLUDE_NAMESPACES", "Kube-System", "RFC 1123 label"),
        ("K8SEV_EXCLUDE_NAMESPACES", "kube_*", "not a glob of namespace names"),
        ("K8SEV_EXCLUDE_KINDS", "Pod.v1", "not a Kubernetes kind"),
        ("K8SEV_EXCLUDE_MESSAGE", "(unclosed", "missing )"),
        ("K8SEV_EXCLUDE_MESSAGE", r"(a)\1", "backreferences"),
        ("K8SEV_EXCLUDE_MESSAGE", "leader|", "matches the empty string"),
        ("K8SEV_EXCLUDE_MESSAGE", "(x{1000}){1000}", "RE2"),
    ],
)
def test_a_bad_filter_value_says_why(variable: str, value: str, why: str) -> None:
    with pytest.raises(SettingsError) as caught:
        Settings.from_env({variable: value})
    (problem,) = caught.value.problems
    assert problem.startswith(f"{variable}={value!r}: ") and why in problem


def test_a_watched_namespace_cannot_be_excluded() -> None:
    with pytest.raises(SettingsError) as caught:
        Settings.from_env(
            {"K8SEV_NAMESPACES": "shop,kube-system,default", "K8SEV_EXCLUDE_NAMESPACES": "kube-*,default"}
        )
    assert caught.value.problems == [
        "K8SEV_EXCLUDE_NAMESPACES excludes watched namespace(s) kube-system, default (K8SEV_NAMESPACES)"
    ]
    kube = Settings.from_env({"K8SEV_NAMESPACES": "shop", "K8SEV_EXCLUDE_NAMESPACES": "kube-*"}).kube
    assert kube.exclude_namespaces == ("kube-*",)


def test_good_filter_values_parse() -> None:
    kube = Settings.from_env(
        {
            "K8SEV_EXCLUDE_NAMESPACES": " kube-*, team-?-dev ,default",
            "K8SEV_EXCLUDE_KINDS": "Lease,ConfigMap,My-Kind",
            "K8SEV_EXCLUDE_COMPONENTS": "kubelet, default-scheduler",
            "K8SEV_EXCLUDE_MESSAGE": "(?i)^(successfully pulled|pulling) image",
        }
    ).kube
    assert kube.exclude_namespaces == ("kube-*", "team-?-dev", "default")
    assert kube.exclude_kinds == ("Lease", "ConfigMap", "My-Kind")
    assert kube.exclude_components == ("kubelet", "default-scheduler")
    assert kube.exclude_message == "(?i)^(successfully pulled|pulling) image"


# --- properties: arbitrary events against an independent statement of each rule ---------------------------------

NAMESPACES = ["default", "kube-system", "kube-public", "team-a", "team-b-dev", "shop", ""]
KINDS = ["Pod", "Lease", "ConfigMap", "Node", "pod", "Deployment"]
REASONS = ["BackOff", "Pulled", "LeaderElection", "Scheduled", "Unhealthy"]
COMPONENTS = ["kubelet", "default-scheduler", "kube-controller-manager", "e2e", ""]
MESSAGES = [
    "x became leader",
    "x stopped leading",
    'Successfully pulled image "nginx" in 1.2s',
    "Back-off restarting failed container",
    "Readiness probe failed: connect: connection refused",
    "ünïcödé ✓",
    "",
]
NAMESPACE_GLOBS = ["kube-*", "team-?", "team-*-dev", "*-public", "shop", "x", "*"]
# Patterns on which Python's re (the oracle) and RE2 (the filter) agree.
PATTERNS = ["became leader$", "(?i)^successfully pulled", "Back-off|BackOff", "✓", r"probe failed: \w+", "^x "]

ODD = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(),
    st.floats(allow_nan=True),
    st.text(max_size=8),
    st.lists(st.integers(), max_size=2),
    st.dictionaries(st.text(max_size=3), st.integers(), max_size=2),
)


def value(vocabulary: list[str]) -> st.SearchStrategy[Any]:
    return st.one_of(st.sampled_from(vocabulary), ODD)


def parent(**children: st.SearchStrategy[Any]) -> st.SearchStrategy[Any]:
    return st.one_of(st.fixed_dictionaries({}, optional=children), ODD)


EVENTS = st.fixed_dictionaries(
    {},
    optional={
        "type": value(["Normal", "Warning"]),
        "reason": value(REASONS),
        "message": value(MESSAGES),
        "reportingComponent": value(COMPONENTS),
        "metadata": parent(namespace=value(NAMESPACES), name=st.text(max_size=5)),
        "involvedObject": parent(kind=value(KINDS), namespace=value(NAMESPACES)),
        "source": parent(component=value(COMPONENTS), host=st.text(max_size=5)),
    },
)


@dataclass(frozen=True)
class Rules:
    types: list[str]
    include_reasons: list[str]
    exclude_reasons: list[str]
    exclude_namespaces: list[str]
    exclude_kinds: list[str]
    exclude_components: list[str]
    exclude_message: str


def subset(vocabulary: list[str]) -> st.SearchStrategy[list[str]]:
    return st.lists(st.sampled_from(vocabulary), max_size=3, unique=True)


RULES = st.builds(
    Rules,
    types=subset(["Normal", "Warning"]),
    include_reasons=subset(REASONS),
    exclude_reasons=subset(REASONS),
    exclude_namespaces=subset(NAMESPACE_GLOBS),
    exclude_kinds=subset([k for k in KINDS if k[0].isupper()]),
    exclude_components=subset([c for c in COMPONENTS if c]),
    exclude_message=st.sampled_from(["", *PATTERNS]),
)


def matching(rules: Rules, event: dict[str, Any]) -> list[str]:
    """Every rule that drops ``event``, in the documented order, by each rule's documented meaning."""

    def text(value: Any) -> str | None:
        return value if isinstance(value, str) else None

    def inner(outer: str, key: str) -> str | None:
        holder = event.get(outer)
        return text(holder.get(key)) if isinstance(holder, dict) else None

    namespace = inner("metadata", "namespace") or inner("involvedObject", "namespace") or ""
    message = text(event.get("message"))
    found = {
        "type": bool(rules.types) and text(event.get("type")) not in rules.types,
        "include_reason": bool(rules.include_reasons) and text(event.get("reason")) not in rules.include_reasons,
        "exclude_reason": text(event.get("reason")) in rules.exclude_reasons,
        "exclude_namespace": any(fnmatch.fnmatchcase(namespace, glob) for glob in rules.exclude_namespaces),
        "exclude_kind": inner("involvedObject", "kind") in rules.exclude_kinds,
        "exclude_component": inner("source", "component") in rules.exclude_components
        or text(event.get("reportingComponent")) in rules.exclude_components,
        "exclude_message": bool(rules.exclude_message)
        and message is not None
        and re.search(rules.exclude_message, message) is not None,
    }
    return [name for name in FILTERS if found[name]]


@settings(max_examples=500)
@given(RULES, EVENTS)
def test_an_event_is_dropped_by_the_first_rule_it_matches_and_kept_when_it_matches_none(
    rules: Rules, event: dict[str, Any]
) -> None:
    keep = EventFilter(**vars(rules))
    expected = matching(rules, event)
    assert keep(event) == (expected[0] if expected else None)


JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(),
    lambda children: st.lists(children, max_size=3) | st.dictionaries(st.text(max_size=5), children, max_size=3),
    max_leaves=10,
)


@given(st.dictionaries(st.sampled_from(["metadata", "involvedObject", "source", "message", "type", "reason",
                                        "reportingComponent", "count", "x"]), JSON))  # fmt: skip
def test_arbitrary_json_never_makes_a_fully_configured_filter_raise(event: dict[str, Any]) -> None:
    keep = EventFilter(
        types=["Normal"],
        exclude_reasons=["Pulled"],
        exclude_namespaces=["kube-*", "default"],
        exclude_kinds=["Lease"],
        exclude_components=["kubelet"],
        exclude_message="(?i)leader",
    )
    assert keep(event) in (None, *FILTERS)
