"""The explorer's queries, as data: typed filters in, search-engine request bodies out.

Pure on purpose (no client, no web framework): the page's JSON API and the ``kubectl-eventlog``
command share it, and its parsers face whatever a browser or a shell sends, so they are tested
with hypothesis. Every bad parameter raises :class:`QueryError` with a sentence fit for a 400.

Paging is ``search_after`` on ``(@timestamp desc, metadata.uid, metadata.resourceVersion)``: a
document id is ``<uid>:<resourceVersion>``, so the triple is unique and a page never repeats or
skips a hit, however deep (``from``/``size`` stops at 10,000). No point-in-time is needed: the
engines differ there (Elasticsearch ``_pit``, OpenSearch ``_search/point_in_time``).
"""

from __future__ import annotations

import base64
import binascii
import json
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

TYPES = ("Normal", "Warning")
PRESETS = ("1h", "24h", "7d", "30d")
DEFAULT_RANGE = "24h"
DEFAULT_SIZE = 50
MAX_SIZE = 500
MAX_TEXT = 500
MAX_VALUE = 253  # the longest Kubernetes object name
MAX_SPAN = timedelta(days=400)
MAX_TIMELINE = 1000
# About this many bars whatever the range: enough to see a spike, few enough to stay cheap.
HISTOGRAM_BARS = 120
_INTERVALS = (
    ("1s", 1),
    ("5s", 5),
    ("10s", 10),
    ("30s", 30),
    ("1m", 60),
    ("5m", 300),
    ("10m", 600),
    ("30m", 1800),
    ("1h", 3600),
    ("3h", 10800),
    ("6h", 21600),
    ("12h", 43200),
    ("1d", 86400),
    ("7d", 604800),
)
SORT = [
    {"@timestamp": {"order": "desc"}},
    {"metadata.uid": {"order": "asc"}},
    {"metadata.resourceVersion": {"order": "asc"}},
]
_DURATION = re.compile(r"^(\d{1,6})(s|m|h|d|w)$")
_UNIT_SECONDS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}
_LIST_FIELDS = ("cluster", "namespace", "kind", "reason", "component")
SEARCH_PARAMS = frozenset(
    {"q", "name", "group", "type", "range", "from", "to", "size", "after", "owner", "labels", *_LIST_FIELDS}
)
#: The enrichment field (streams/ingest/metadata.py; docs/design.md).
META = "involvedObjectMeta"
MAX_SELECTOR = 1000
TIMELINE_PARAMS = frozenset({"cluster", "namespace", "kind", "name", "owners", "range", "from", "to"})
# Generated name suffixes: k8s.io/apimachinery's rand alphabet (no vowels, no 0 1 3).
_SAFE = "bcdfghjklmnpqrstvwxz2456789"
_REPLICASET_POD = re.compile(rf"^(?P<deployment>.+)-(?P<hash>[{_SAFE}]{{1,10}})-[{_SAFE}]{{5}}$")
_GENERATED_POD = re.compile(rf"^(?P<owner>.+)-[{_SAFE}]{{5}}$")
_ORDINAL_POD = re.compile(r"^(?P<owner>.+)-(?:0|[1-9]\d{0,5})$")


class QueryError(ValueError):
    """A parameter the explorer cannot use; the message says which and why."""


@dataclass(frozen=True)
class TimeRange:
    start: datetime
    end: datetime

    @property
    def start_ms(self) -> int:
        return _ms(self.start)

    @property
    def end_ms(self) -> int:
        return _ms(self.end)

    def body(self) -> dict[str, Any]:
        return {"range": {"@timestamp": {"gte": self.start_ms, "lte": self.end_ms, "format": "epoch_millis"}}}


@dataclass(frozen=True)
class Filter:
    """What the user asked for; empty tuples and strings mean "any"."""

    range: TimeRange
    text: str = ""
    cluster: tuple[str, ...] = ()
    namespace: tuple[str, ...] = ()
    kind: tuple[str, ...] = ()
    name: str = ""
    # The object's API group (apps, example.com); empty: any. Events name it only in apiVersion.
    group: str = ""
    types: tuple[str, ...] = ()
    reason: tuple[str, ...] = ()
    component: tuple[str, ...] = ()
    #: An object and everything it owns: ``Kind/name`` (``Deployment/web``).
    owner: str = ""
    #: A label selector over the recorded labels, parsed.
    labels: tuple[Requirement, ...] = ()
    # The namespaces the caller may read (None: every one, cluster-scoped objects' events too).
    within: tuple[str, ...] | None = None


@dataclass(frozen=True)
class Requirement:
    """One term of a label selector: ``key`` ``op`` ``values`` (op: in, notin, exists, absent)."""

    key: str
    op: str
    values: tuple[str, ...] = ()


@dataclass(frozen=True)
class Page:
    size: int = DEFAULT_SIZE
    after: tuple[int, str, str] | None = None


@dataclass(frozen=True)
class ObjectRef:
    kind: str
    name: str
    namespace: str = ""
    cluster: str = ""


@dataclass(frozen=True)
class Owner:
    """An object whose events belong on a pod's timeline when they name ``mentions``."""

    kind: tuple[str, ...]
    name: str
    mentions: str


@dataclass(frozen=True)
class Timeline:
    target: ObjectRef
    owners: tuple[Owner, ...] = ()
    range: TimeRange | None = None
    limit: int = MAX_TIMELINE
    within: tuple[str, ...] | None = None


@dataclass(frozen=True)
class Histogram:
    interval: str
    seconds: int
    start_ms: int
    end_ms: int
    times: list[int] = field(default_factory=list)
    normal: list[int] = field(default_factory=list)
    warning: list[int] = field(default_factory=list)


# ---------------------------------------------------------------- parsing


def parse_search(params: Mapping[str, str], now: datetime) -> tuple[Filter, Page]:
    """The page's search parameters (``q``, filters, ``range``/``from``/``to``, ``size``, ``after``)."""
    _no_unknown(params, SEARCH_PARAMS)
    text = params.get("q", "").strip()
    if len(text) > MAX_TEXT:
        raise QueryError(f"q: at most {MAX_TEXT} characters")
    values = {name: _values(params, name) for name in _LIST_FIELDS}
    search = Filter(
        range=parse_range(params, now),
        text=text,
        name=_value(params, "name"),
        group=_value(params, "group"),
        types=_types(params.get("type", "")),
        owner=parse_owner(_value(params, "owner")),
        labels=parse_selector(params.get("labels", "")),
        **values,
    )
    return search, Page(
        size=_size(params.get("size")), after=decode_cursor(params["after"]) if "after" in params else None
    )


def parse_owner(text: str) -> str:
    """``Kind/name``, as the documents' ``ownerRefs`` write it; empty: none."""
    if not text:
        return ""
    kind, sep, name = text.partition("/")
    if not sep or not kind or not name or "/" in name or not kind[:1].isupper():
        raise QueryError("owner: Kind/name, such as Deployment/web")
    return text


_SELECTOR_TERM = re.compile(
    r"^\s*(?:(?P<absent>!)\s*(?P<akey>[^\s=!(),]+)"
    r"|(?P<key>[^\s=!(),]+)\s*(?:(?P<op>==|=|!=)\s*(?P<value>[^\s=!(),]*)"
    r"|\s+(?P<set>in|notin)\s*\((?P<values>[^()]*)\))?)\s*$"
)


def parse_selector(text: str) -> tuple[Requirement, ...]:
    """A Kubernetes label selector (``app=web,tier!=db,env in (a,b),!canary``) over the recorded labels."""
    text = text.strip()
    if not text:
        return ()
    if len(text) > MAX_SELECTOR or any(ord(c) < 32 for c in text):
        raise QueryError(f"labels: a selector of at most {MAX_SELECTOR} printable characters")
    # Split on the commas outside parentheses.
    terms, depth, start = [], 0, 0
    for i, c in enumerate(text):
        depth += (c == "(") - (c == ")")
        if c == "," and depth == 0:
            terms.append(text[start:i])
            start = i + 1
    terms.append(text[start:])
    requirements = []
    for term in terms:
        match = _SELECTOR_TERM.match(term)
        if match is None:
            raise QueryError(
                f"labels: {term.strip()[:60]!r} is not a selector term (key=value, key!=value, key in (a,b), key, !key)"
            )
        if match["absent"]:
            requirements.append(Requirement(match["akey"], "absent"))
        elif match["op"]:
            requirements.append(Requirement(match["key"], "notin" if match["op"] == "!=" else "in", (match["value"],)))
        elif match["set"]:
            values = tuple(v.strip() for v in match["values"].split(",") if v.strip())
            if not values:
                raise QueryError(f"labels: {term.strip()[:60]!r} lists no values")
            requirements.append(Requirement(match["key"], match["set"], values))
        else:
            requirements.append(Requirement(match["key"], "exists"))
    return tuple(requirements)


def parse_range(params: Mapping[str, str], now: datetime, default: str | None = DEFAULT_RANGE) -> TimeRange:
    """``range`` (a preset or a duration back from ``now``) or ``from``/``to``; never both.

    ``from`` alone ends now; ``to`` alone starts one default range earlier.
    """
    start_text, end_text, span_text = params.get("from", ""), params.get("to", ""), params.get("range", "")
    if span_text and (start_text or end_text):
        raise QueryError("give range or from/to, not both")
    if start_text or end_text:
        end = parse_time(end_text, "to") if end_text else now
        start = parse_time(start_text, "from") if start_text else end - parse_duration(default or DEFAULT_RANGE)
    else:
        if not span_text and default is None:
            raise QueryError("a time range is needed (range, or from/to)")
        end = now
        start = now - parse_duration(span_text or default or DEFAULT_RANGE, "range")
    if start >= end:
        raise QueryError("from must be before to")
    if end - start > MAX_SPAN:
        raise QueryError(f"the range may span at most {MAX_SPAN.days} days")
    return TimeRange(start, end)


def parse_duration(text: str, name: str = "range") -> timedelta:
    """``90s``, ``15m``, ``24h``, ``7d``, ``2w`` -> a timedelta (at most 400 days)."""
    match = _DURATION.match(text.strip())
    if not match:
        raise QueryError(f"{name}: {text[:40]!r} is not a duration such as {', '.join(PRESETS)} or 90m")
    span = timedelta(seconds=int(match.group(1)) * _UNIT_SECONDS[match.group(2)])
    if not span:
        raise QueryError(f"{name}: must be longer than zero")
    if span > MAX_SPAN:
        raise QueryError(f"{name}: at most {MAX_SPAN.days} days")
    return span


def parse_time(text: str, name: str) -> datetime:
    """ISO 8601 (a time without zone is UTC) or milliseconds since the epoch -> aware UTC datetime."""
    text = text.strip()
    try:
        if text.isdigit() and len(text) <= 15:
            return datetime.fromtimestamp(int(text) / 1000, UTC)
        if len(text) > 40:
            raise ValueError(text)
        stamp = datetime.fromisoformat(text.replace("Z", "+00:00").replace("z", "+00:00"))
    except (ValueError, OverflowError, OSError):
        raise QueryError(f"{name}: {text[:40]!r} is not a time (2026-03-01T03:10:00Z, or epoch milliseconds)") from None
    stamp = stamp.replace(tzinfo=UTC) if stamp.tzinfo is None else stamp.astimezone(UTC)
    if not 1970 <= stamp.year <= 9999:
        raise QueryError(f"{name}: {text[:40]!r} is out of range")
    return stamp


def parse_timeline(params: Mapping[str, str], now: datetime) -> Timeline:
    """One object (``kind``, ``name``, optional ``namespace``/``cluster``); ``owners=1`` adds a pod's owners."""
    _no_unknown(params, TIMELINE_PARAMS)
    kind, name = _value(params, "kind"), _value(params, "name")
    if not kind or not name:
        raise QueryError("kind and name are needed")
    target = ObjectRef(kind, name, _value(params, "namespace"), _value(params, "cluster"))
    owners_text = params.get("owners", "0")
    if owners_text not in ("0", "1", "true", "false"):
        raise QueryError("owners: 1 or 0")
    owners = pod_owners(name) if owners_text in ("1", "true") and kind == "Pod" else ()
    has_range = any(params.get(k) for k in ("range", "from", "to"))
    return Timeline(target, owners, parse_range(params, now) if has_range else None)


def pod_owners(pod: str) -> tuple[Owner, ...]:
    """Who probably owns ``pod``, from the shape of its generated name, and what their events name.

    Events carry no ownerReferences, and the pod may be long gone, so its name is all there is:
    ``<deployment>-<template hash>-<5>`` is a ReplicaSet's pod (the ReplicaSet's events name the
    pod; the Deployment's name the ReplicaSet), ``<owner>-<5>`` a DaemonSet's or Job's (or a bare
    ReplicaSet's), ``<owner>-<ordinal>`` a StatefulSet's. Only owner events that mention this pod
    (or its ReplicaSet) are taken, so a guess that is wrong adds little noise.
    """
    owners: list[Owner] = []
    match = _REPLICASET_POD.match(pod)
    if match:
        replicaset = f"{match.group('deployment')}-{match.group('hash')}"
        owners.append(Owner(("ReplicaSet",), replicaset, pod))
        owners.append(Owner(("Deployment",), match.group("deployment"), replicaset))
    elif match := _GENERATED_POD.match(pod):
        owners.append(Owner(("DaemonSet", "Job", "ReplicaSet"), match.group("owner"), pod))
    match = _ORDINAL_POD.match(pod)
    if match:
        owners.append(Owner(("StatefulSet",), match.group("owner"), pod))
    return tuple(owners)


def _no_unknown(params: Mapping[str, str], known: frozenset[str]) -> None:
    unknown = sorted(set(params) - known)
    if unknown:
        shown = ", ".join(u[:40] for u in unknown[:5])
        raise QueryError(f"unknown parameter(s) {shown}; known: {', '.join(sorted(known))}")


def _value(params: Mapping[str, str], name: str) -> str:
    value = params.get(name, "").strip()
    if len(value) > MAX_VALUE:
        raise QueryError(f"{name}: at most {MAX_VALUE} characters")
    if any(ord(c) < 32 for c in value):
        raise QueryError(f"{name}: control characters are not allowed")
    return value


def _values(params: Mapping[str, str], name: str) -> tuple[str, ...]:
    items = tuple(dict.fromkeys(item.strip() for item in params.get(name, "").split(",") if item.strip()))
    if len(items) > 50:
        raise QueryError(f"{name}: at most 50 values")
    for item in items:
        if len(item) > MAX_VALUE or any(ord(c) < 32 for c in item):
            raise QueryError(f"{name}: each value at most {MAX_VALUE} printable characters")
    return items


def _types(text: str) -> tuple[str, ...]:
    """Any case, as ``kubectl events --types`` takes them; the archive's spelling out."""
    spelled = {t.lower(): t for t in TYPES}
    given = [t.strip() for t in text.split(",") if t.strip()]
    types = tuple(dict.fromkeys(spelled.get(t.lower(), t) for t in given))
    unknown = [t for t in types if t not in TYPES]
    if unknown:
        raise QueryError(f"type: {', '.join(u[:20] for u in unknown[:3])} unknown (Normal, Warning)")
    return types


def _size(text: str | None) -> int:
    if text is None or text == "":
        return DEFAULT_SIZE
    if not text.isdigit() or not 1 <= int(text) <= MAX_SIZE:
        raise QueryError(f"size: a whole number from 1 to {MAX_SIZE}")
    return int(text)


# ---------------------------------------------------------------- cursors


def encode_cursor(sort: list[Any]) -> str:
    """The sort values of a page's last hit, as an opaque URL-safe token."""
    raw = json.dumps(sort, separators=(",", ":")).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def decode_cursor(token: str) -> tuple[int, str, str]:
    if len(token) > 2000:
        raise QueryError("after: too long")
    try:
        value = json.loads(base64.urlsafe_b64decode(token + "=" * (-len(token) % 4)))
    except (binascii.Error, ValueError, UnicodeDecodeError):
        raise QueryError("after: not a cursor from a previous page") from None
    if (
        not isinstance(value, list)
        or len(value) != 3
        or not isinstance(value[0], int)
        or isinstance(value[0], bool)
        or not all(isinstance(v, str) for v in value[1:])
    ):
        raise QueryError("after: not a cursor from a previous page")
    return value[0], value[1], value[2]


# ---------------------------------------------------------------- bodies


def within_clauses(within: tuple[str, ...] | None) -> list[dict[str, Any]]:
    """Only the events of these namespaces' objects: the event's namespace and its object's both.

    An event about a cluster-scoped object (a Node) is kept in some namespace (``default``) but its
    object has none: only cluster-wide access (``within`` None) sees it.
    """
    if within is None:
        return []
    return [{"terms": {"metadata.namespace": list(within)}}, {"terms": {"involvedObject.namespace": list(within)}}]


def filter_clauses(search: Filter) -> list[dict[str, Any]]:
    clauses: list[dict[str, Any]] = [search.range.body(), *within_clauses(search.within)]
    for values, path in (
        (search.cluster, "cluster"),
        (search.namespace, "metadata.namespace"),
        (search.kind, "involvedObject.kind"),
        (search.types, "type"),
        (search.reason, "reason"),
    ):
        if values:
            clauses.append({"terms": {path: list(values)}})
    if search.name:
        clauses.append({"term": {"involvedObject.name": search.name}})
    if search.group:
        clauses.append({"prefix": {"involvedObject.apiVersion": f"{search.group}/"}})
    if search.owner:
        clauses.append(owned_clause(search.owner))
    clauses.extend(selector_clause(r) for r in search.labels)
    if search.component:
        # Older events say who reported them in source.component, newer ones in reportingComponent.
        either = [{"terms": {"reportingComponent": list(search.component)}}]
        either.append({"terms": {"source.component": list(search.component)}})
        clauses.append({"bool": {"should": either, "minimum_should_match": 1}})
    return clauses


def selector_clause(requirement: Requirement) -> dict[str, Any]:
    """A selector term over ``labels``, recorded as ``key=value`` terms."""
    field_ = f"{META}.labels"
    if requirement.op in ("exists", "absent"):
        present: dict[str, Any] = {"prefix": {field_: {"value": f"{requirement.key}="}}}
        return present if requirement.op == "exists" else {"bool": {"must_not": [present]}}
    terms: dict[str, Any] = {"terms": {field_: [f"{requirement.key}={v}" for v in requirement.values]}}
    return terms if requirement.op == "in" else {"bool": {"must_not": [terms]}}


#: What a controller's objects are named, for documents written before enrichment (no recorded
#: owners): kinds and name patterns (regular expressions after ``<name>-``) of what it makes.
_GUESSES: dict[str, tuple[tuple[str, str], ...]] = {
    "Deployment": (("ReplicaSet", f"[{_SAFE}]{{1,10}}"), ("Pod", f"[{_SAFE}]{{1,10}}-[{_SAFE}]{{5}}")),
    "ReplicaSet": (("Pod", f"[{_SAFE}]{{5}}"),),
    "DaemonSet": (("Pod", f"[{_SAFE}]{{5}}"),),
    "Job": (("Pod", f"[{_SAFE}]{{5}}"),),
    "StatefulSet": (("Pod", "(0|[1-9][0-9]{0,5})"),),
    "CronJob": (("Job", "[0-9]{1,12}"), ("Pod", f"[0-9]{{1,12}}-[{_SAFE}]{{5}}")),
}


def owned_clause(owner: str) -> dict[str, Any]:
    """The object ``Kind/name`` and everything it owns: by the recorded owner chain, or, only for
    documents without one, by the shape of generated names."""
    kind, _, name = owner.partition("/")
    either: list[dict[str, Any]] = [
        {"bool": {"filter": [{"term": {"involvedObject.kind": kind}}, {"term": {"involvedObject.name": name}}]}},
        {"term": {f"{META}.ownerRefs": owner}},
    ]
    escaped = re.sub(r"([.?+*|{}\[\]()\"\\#@&<>~])", r"\\\1", name)
    for made, pattern in _GUESSES.get(kind, ()):
        either.append(
            {
                "bool": {
                    "filter": [
                        {"term": {"involvedObject.kind": made}},
                        {"regexp": {"involvedObject.name": {"value": f"{escaped}-{pattern}"}}},
                    ],
                    "must_not": [{"exists": {"field": META}}],
                }
            }
        )
    return {"bool": {"should": either, "minimum_should_match": 1}}


def text_clause(text: str) -> dict[str, Any] | None:
    """Free text over message, reason and object name; a single word also finds names it starts."""
    if not text:
        return None
    words: list[dict[str, Any]] = [
        {
            "simple_query_string": {
                "query": text,
                "fields": ["message", "reason", "involvedObject.name"],
                "default_operator": "and",
                "lenient": True,
            }
        }
    ]
    if len(text.split()) == 1:
        words.append({"prefix": {"involvedObject.name": {"value": text}}})
    return {"bool": {"should": words, "minimum_should_match": 1}}


def query_clause(search: Filter) -> dict[str, Any]:
    must = text_clause(search.text)
    query: dict[str, Any] = {"filter": filter_clauses(search)}
    if must:
        query["must"] = [must]
    return {"bool": query}


def search_body(search: Filter, page: Page, timeout_s: float = 10.0) -> dict[str, Any]:
    """Newest first, one page, the exact total."""
    body: dict[str, Any] = {
        "query": query_clause(search),
        "sort": SORT,
        "size": page.size,
        "track_total_hits": True,
        "timeout": f"{max(1, int(timeout_s * 1000))}ms",
    }
    if page.after is not None:
        body["search_after"] = list(page.after)
    return body


def namespaces_body(size: int) -> dict[str, Any]:
    """Which namespaces have documents at all (the candidates a person's access is checked against)."""
    return {"size": 0, "aggs": {"namespaces": {"terms": {"field": "metadata.namespace", "size": size}}}}


def namespaces_answer(response: Mapping[str, Any]) -> list[str]:
    buckets = ((response.get("aggregations") or {}).get("namespaces") or {}).get("buckets") or []
    return [str(b["key"]) for b in buckets if b.get("key")]


def histogram_interval(span: timedelta) -> tuple[str, int]:
    seconds = span.total_seconds()
    for label, size in _INTERVALS:
        if seconds / size <= HISTOGRAM_BARS:
            return label, size
    return _INTERVALS[-1]


def histogram_body(search: Filter, timeout_s: float = 10.0) -> dict[str, Any]:
    """Counts over the range in fixed buckets, split Normal/Warning, empty buckets included."""
    label, _ = histogram_interval(search.range.end - search.range.start)
    return {
        "query": query_clause(search),
        "size": 0,
        "timeout": f"{max(1, int(timeout_s * 1000))}ms",
        "aggs": {
            "over_time": {
                "date_histogram": {
                    "field": "@timestamp",
                    "fixed_interval": label,
                    "min_doc_count": 0,
                    "extended_bounds": {"min": search.range.start_ms, "max": search.range.end_ms},
                },
                "aggs": {
                    "types": {"filters": {"filters": {t: {"term": {"type": t}} for t in TYPES}}},
                },
            }
        },
    }


def recorded_owners_body(timeline: Timeline) -> dict[str, Any]:
    """The newest enriched document about the timeline's object: its recorded owner chain."""
    target = timeline.target
    scope: list[dict[str, Any]] = [
        # The caller's namespaces bound this lookup as they bound the timeline.
        *within_clauses(timeline.within),
        {"term": {"involvedObject.kind": target.kind}},
        {"term": {"involvedObject.name": target.name}},
        {"exists": {"field": f"{META}.owners"}},
    ]
    if target.namespace:
        scope.append({"term": {"involvedObject.namespace": target.namespace}})
    if target.cluster:
        scope.append({"term": {"cluster": target.cluster}})
    return {"query": {"bool": {"filter": scope}}, "sort": SORT, "size": 1, "_source": [f"{META}.owners"]}


def recorded_owners(name: str, response: Mapping[str, Any]) -> tuple[Owner, ...] | None:
    """The owners of ``name`` from :func:`recorded_owners_body`'s answer, each with what its events
    name (the link below it); None when no document recorded them (then the name guess stays)."""
    hits = (response.get("hits") or {}).get("hits") or []
    if not hits:
        return None
    recorded = ((hits[0].get("_source") or {}).get(META) or {}).get("owners")
    if not isinstance(recorded, list) or not recorded:
        return None
    owners: list[Owner] = []
    below = name
    for link in recorded:
        if isinstance(link, Mapping) and isinstance(link.get("kind"), str) and isinstance(link.get("name"), str):
            owners.append(Owner((link["kind"],), link["name"], below))
            below = link["name"]
    return tuple(owners) or None


def timeline_body(timeline: Timeline) -> dict[str, Any]:
    """Every version of every event about the object (and its owners' that name it), oldest first."""
    target = timeline.target
    scope: list[dict[str, Any]] = within_clauses(timeline.within)
    if target.namespace:
        scope.append({"term": {"involvedObject.namespace": target.namespace}})
    if target.cluster:
        scope.append({"term": {"cluster": target.cluster}})
    if timeline.range is not None:
        scope.append(timeline.range.body())
    about: list[dict[str, Any]] = [
        {
            "bool": {
                "filter": [
                    {"term": {"involvedObject.kind": target.kind}},
                    {"term": {"involvedObject.name": target.name}},
                ]
            }
        }
    ]
    for owner in timeline.owners:
        about.append(
            {
                "bool": {
                    "filter": [
                        {"terms": {"involvedObject.kind": list(owner.kind)}},
                        {"term": {"involvedObject.name": owner.name}},
                        {"match_phrase": {"message": owner.mentions}},
                    ]
                }
            }
        )
    # What the object owns (its ReplicaSets' and pods' events, for a Deployment), by the recorded chain.
    about.append({"term": {f"{META}.ownerRefs": f"{target.kind}/{target.name}"}})
    return {
        "query": {"bool": {"filter": [*scope, {"bool": {"should": about, "minimum_should_match": 1}}]}},
        "sort": [
            {"@timestamp": {"order": "asc"}},
            {"metadata.uid": {"order": "asc"}},
            {"metadata.resourceVersion": {"order": "asc"}},
        ],
        "size": timeline.limit,
        "track_total_hits": True,
    }


# ---------------------------------------------------------------- answers


def row(hit: Mapping[str, Any]) -> dict[str, Any]:
    """One hit as the page and the command show it: flat, every field present."""
    doc = hit.get("_source") or {}
    obj = doc.get("involvedObject") or {}
    meta = doc.get("metadata") or {}
    series = doc.get("series") or {}
    source = doc.get("source") or {}
    count = series.get("count") or doc.get("count") or 1
    return {
        "id": str(hit.get("_id", "")),
        "index": str(hit.get("_index", "")),
        "time": doc.get("@timestamp"),
        "first": doc.get("firstTimestamp") or doc.get("eventTime") or doc.get("@timestamp"),
        "type": str(doc.get("type") or ""),
        "reason": str(doc.get("reason") or ""),
        "kind": str(obj.get("kind") or ""),
        "namespace": str(obj.get("namespace") or meta.get("namespace") or ""),
        "name": str(obj.get("name") or ""),
        "subobject": str(obj.get("fieldPath") or ""),
        "message": str(doc.get("message") or ""),
        "count": int(count) if isinstance(count, int | float) else 1,
        "component": str(doc.get("reportingComponent") or source.get("component") or ""),
        "host": str(source.get("host") or doc.get("reportingInstance") or ""),
        "cluster": str(doc.get("cluster") or ""),
        "uid": str(meta.get("uid") or ""),
        "event": str(meta.get("name") or ""),
        "owners": _owner_refs(doc),
    }


def _owner_refs(doc: Mapping[str, Any]) -> list[str]:
    """The recorded owner chain as ``Kind/name``, nearest first; empty for documents without one."""
    recorded = doc.get(META)
    refs = recorded.get("ownerRefs") if isinstance(recorded, Mapping) else None
    return [str(r) for r in refs if isinstance(r, str)] if isinstance(refs, list) else []


def search_answer(response: Mapping[str, Any], page: Page, *, sources: bool = False) -> dict[str, Any]:
    """The API's answer; ``sources``: each row with its document as archived (``source``)."""
    hits = (response.get("hits") or {}).get("hits") or []
    total = (response.get("hits") or {}).get("total") or {}
    full = len(hits) == page.size
    last = hits[-1].get("sort") if hits else None
    return {
        "total": int(total.get("value", 0)) if isinstance(total, Mapping) else int(total),
        "exact": not isinstance(total, Mapping) or total.get("relation", "eq") == "eq",
        "timed_out": bool(response.get("timed_out")),
        "took_ms": int(response.get("took", 0)),
        "rows": [{**row(h), "source": h.get("_source") or {}} if sources else row(h) for h in hits],
        "next": encode_cursor(list(last)) if full and isinstance(last, list) and len(last) == 3 else None,
    }


def histogram_answer(response: Mapping[str, Any], search: Filter) -> Histogram:
    label, seconds = histogram_interval(search.range.end - search.range.start)
    out = Histogram(label, seconds, search.range.start_ms, search.range.end_ms)
    buckets = ((response.get("aggregations") or {}).get("over_time") or {}).get("buckets") or []
    for bucket in buckets:
        types = (bucket.get("types") or {}).get("buckets") or {}
        out.times.append(int(bucket["key"]) // 1000)
        out.normal.append(int((types.get("Normal") or {}).get("doc_count", 0)))
        out.warning.append(int((types.get("Warning") or {}).get("doc_count", 0)))
    return out


def timeline_rows(response: Mapping[str, Any]) -> list[dict[str, Any]]:
    """Rows oldest first, each with ``growth``: how much its event's count rose since its last version.

    Neither the times nor the write order alone give the order things happened in: ``lastTimestamp``
    has whole seconds (cut down, so the event happened within the second that follows), and a writer
    may write an event after one it preceded (the scheduler's Scheduled reached etcd after kwok's
    Started). So a whole-second time counts as the end of its second, a precise one as itself, and
    equal times keep the API server's write order (a numeric resourceVersion), per cluster.
    """
    rows = [row(hit) for hit in (response.get("hits") or {}).get("hits") or []]
    rows.sort(key=_timeline_key)
    last: dict[str, int] = {}
    for item in rows:
        key = item["uid"] or item["id"]
        item["growth"] = item["count"] - last[key] if key in last else item["count"]
        last[key] = item["count"]
    return rows


def _timeline_key(item: Mapping[str, Any]) -> tuple[str, float, int, int]:
    try:
        when = datetime.fromisoformat(str(item["time"]).replace("Z", "+00:00")).timestamp()
    except ValueError:
        when = 0.0
    if when == int(when):
        when += 0.999  # a whole-second stamp: sometime within that second, count it at its end
    version = item["id"].rpartition(":")[2]
    return (item.get("cluster", ""), when, 0 if version.isdigit() else 1, int(version) if version.isdigit() else 0)


def _ms(stamp: datetime) -> int:
    return int(stamp.timestamp() * 1000)
