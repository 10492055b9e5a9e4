"""Enrichment: metadata watches against a scripted API, the bounded cache, the owner chain, the leader's lifecycle."""

from __future__ import annotations

import asyncio
import logging
import threading
from collections.abc import Callable
from typing import Any

import pytest

from streams.core import metrics
from streams.ingest import metadata
from streams.ingest.checkpoint import Checkpoint
from streams.ingest.election import Started, Stopped
from streams.ingest.metadata import (
    FIELD,
    Batches,
    Enricher,
    Enrichment,
    EnrichSettings,
    LabelAllow,
    MetadataCache,
    MetadataWatcher,
    MetaItem,
    Resource,
    parse_resource,
)
from streams.kube.api import ApiError, Disconnected
from tests.unit.kube_fakes import FakeClock, FakeKube, gone, note, page

PODS = Resource("", "v1", "pods")
RS = Resource("apps", "v1", "replicasets")
DEPLOY = Resource("apps", "v1", "deployments")
NODES = Resource("", "v1", "nodes")
ALLOW = LabelAllow(metadata.DEFAULT_LABELS)


def obj(
    uid: str,
    name: str = "",
    rv: str = "1",
    labels: dict[str, str] | None = None,
    owner: tuple[str, str, str] | None = None,
    others: list[dict[str, Any]] | None = None,
) -> dict[str, Any]:
    meta: dict[str, Any] = {"uid": uid, "name": name or uid, "namespace": "default", "resourceVersion": rv}
    if labels is not None:
        meta["labels"] = labels
    refs = list(others or [])
    if owner is not None:
        refs.append({"kind": owner[0], "name": owner[1], "uid": owner[2], "controller": True})
    if refs:
        meta["ownerReferences"] = refs
    return {"kind": "PartialObjectMetadata", "apiVersion": "meta.k8s.io/v1", "metadata": meta}


def event_about(uid: str, kind: str = "Pod", name: str = "p") -> dict[str, Any]:
    return {
        "metadata": {"uid": "e-" + uid, "resourceVersion": "5"},
        "involvedObject": {"kind": kind, "name": name, "namespace": "default", "uid": uid},
        "reason": "Started",
    }


def batches() -> Batches[MetaItem]:
    return Batches(10_000, lambda: None)


def watcher(kube: FakeKube, out: Batches[MetaItem], clock: FakeClock, resource: Resource = PODS) -> MetadataWatcher:
    return MetadataWatcher(kube, out, clock, resource, generation=3, page_size=2)


def kinds(items: list[MetaItem]) -> list[tuple[str, str]]:
    return [(i.kind, (i.obj or {}).get("metadata", {}).get("uid", i.detail)) for i in items]


# --- the watch ------------------------------------------------------------------------------------


def test_lists_metadata_in_pages_then_watches_every_change_including_deletions() -> None:
    kube, out, clock = FakeKube(), batches(), FakeClock()
    w = watcher(kube, out, clock)
    path = "/api/v1/pods"
    kube.meta_lists[path] = [page([obj("a"), obj("b")], token="c1"), page([obj("c")], rv="10")]
    kube.meta_watches[path] = [
        [
            note("ADDED", obj("d", rv="11")),
            note("MODIFIED", obj("d", rv="12")),
            note("DELETED", obj("a", rv="13")),
            w.stop,
        ]
    ]
    w.run()
    assert kube.meta_calls == [("list", path, None), ("list", path, "c1"), ("watch", path, "10")]
    assert kinds(out.take()) == [
        ("upsert", "a"),
        ("upsert", "b"),
        ("upsert", "c"),
        ("status", "watching"),
        ("upsert", "d"),
        ("upsert", "d"),
        ("delete", "a"),
    ]
    assert w.resource_version == "13"


def test_paths_of_core_grouped_and_custom_resources() -> None:
    assert parse_resource("v1/pods").path == "/api/v1/pods"
    assert parse_resource("apps/v1/replicasets").path == "/apis/apps/v1/replicasets"
    widgets = parse_resource("example.com/v1alpha1/widgets")
    assert widgets.path == "/apis/example.com/v1alpha1/widgets" and widgets.name == "widgets.example.com"
    for bad in ("pods", "a/b/c/d", "v1/Pods", "Apps/v1/x", "v1/"):
        with pytest.raises(ValueError, match=bad.split("/")[0] if bad != "v1/" else "resource"):
            parse_resource(bad)


def test_410_lists_again_without_backing_off() -> None:
    kube, out, clock = FakeKube(), batches(), FakeClock()
    w = watcher(kube, out, clock)
    path = "/api/v1/pods"
    kube.meta_lists[path] = [page([], rv="10"), page([obj("x")], rv="40")]
    kube.meta_watches[path] = [[gone()], [w.stop]]
    w.run()
    assert [c for c in kube.meta_calls if c[0] == "watch"] == [("watch", path, "10"), ("watch", path, "40")]
    assert clock.waits == []


def test_a_forbidden_resource_is_reported_once_logged_and_tried_again_later(caplog: pytest.LogCaptureFixture) -> None:
    kube, out = FakeKube(), batches()
    path = "/apis/batch/v1/cronjobs"
    clock = FakeClock()
    w = watcher(kube, out, clock, Resource("batch", "v1", "cronjobs"))
    refused = ApiError(403, "Forbidden", 'cronjobs.batch is forbidden: User "x" cannot list resource')

    def stop_on_third(n: int) -> None:
        if n == 2:
            w.stop()

    clock.on_wait = stop_on_third
    kube.meta_lists[path] = [refused, refused, refused]
    with caplog.at_level(logging.INFO, logger="streams.ingest.metadata"):
        w.run()
    assert clock.waits == [metadata.REFUSED_RETRY, metadata.REFUSED_RETRY]
    statuses = [i for i in out.take() if i.kind == "status"]
    assert statuses and not statuses[0].ok and statuses[0].detail.startswith("forbidden (403)")
    refusals = [r for r in caplog.messages if "event=enrich_watch_refused" in r]
    assert len(refusals) == 1 and "resource=cronjobs.batch" in refusals[0] and "status=403" in refusals[0]


def test_a_dropped_connection_backs_off_and_lists_again() -> None:
    kube, out, clock = FakeKube(), batches(), FakeClock()
    w = watcher(kube, out, clock)
    path = "/api/v1/pods"
    kube.meta_lists[path] = [page([], rv="10"), page([], rv="20")]
    kube.meta_watches[path] = [[Disconnected("reset")], [w.stop]]
    before = metrics.ENRICH_WATCH_RESTARTS.labels(resource="pods", cause="connection")._value.get()
    w.run()
    assert len(clock.waits) == 1
    # Resumes the watch from where it got to; only a 410 lists again.
    assert [c[2] for c in kube.meta_calls if c[0] == "watch"] == ["10", "10"]
    assert metrics.ENRICH_WATCH_RESTARTS.labels(resource="pods", cause="connection")._value.get() == before + 1


# --- the cache ------------------------------------------------------------------------------------


def cache(clock: FakeClock | None = None, size: int = 100, grace: float = 60.0) -> MetadataCache:
    return MetadataCache(clock or FakeClock(), size=size, grace=grace, allow=ALLOW)


def upsert(c: MetadataCache, resource: Resource, o: dict[str, Any], kind: str = "upsert") -> None:
    c.apply(MetaItem(kind, resource, 0, o))  # type: ignore[arg-type]


def deployment_chain(c: MetadataCache) -> None:
    upsert(c, DEPLOY, obj("d1", "web", labels={"app": "web"}))
    upsert(c, RS, obj("rs1", "web-5d9", owner=("Deployment", "web", "d1")))
    labels = {"app": "web", "app.kubernetes.io/name": "web", "pod-template-hash": "5d9", "team": "x"}
    upsert(c, PODS, obj("p1", "web-5d9-abcde", labels=labels, owner=("ReplicaSet", "web-5d9", "rs1")))


def test_the_owner_chain_reaches_the_top_controller_and_labels_are_allow_listed() -> None:
    c = cache()
    deployment_chain(c)
    context = c.context(event_about("p1"))
    assert context == {
        "labels": ["app.kubernetes.io/name=web", "app=web"],
        "owners": [
            {"kind": "ReplicaSet", "name": "web-5d9", "uid": "rs1"},
            {"kind": "Deployment", "name": "web", "uid": "d1"},
        ],
        "ownerRefs": ["ReplicaSet/web-5d9", "Deployment/web"],
    }
    # An owner that is not cached (a kind not watched) still ends the chain with what the reference says.
    upsert(c, PODS, obj("p2", owner=("Widget", "w", "w1")))
    assert c.context(event_about("p2"))["owners"] == [{"kind": "Widget", "name": "w", "uid": "w1"}]  # type: ignore[index]


def test_the_controller_reference_wins_over_other_owners() -> None:
    c = cache()
    other = {"kind": "Thing", "name": "t", "uid": "t1"}
    upsert(c, PODS, obj("p1", owner=("ReplicaSet", "r", "rs1"), others=[other]))
    assert c.context(event_about("p1"))["ownerRefs"] == ["ReplicaSet/r"]  # type: ignore[index]


def test_a_cycle_of_owners_ends() -> None:
    c = cache()
    upsert(c, RS, obj("a", owner=("ReplicaSet", "b", "b")))
    upsert(c, RS, obj("b", owner=("ReplicaSet", "a", "a")))
    owners = c.context(event_about("a"))["owners"]  # type: ignore[index]
    assert len(owners) <= metadata.MAX_CHAIN


def test_unknown_objects_and_events_without_uid_get_nothing() -> None:
    c = cache()
    assert c.context(event_about("nope")) is None
    assert c.context({"involvedObject": {"kind": "Pod"}}) is None
    assert c.context({}) is None


def test_the_cache_is_bounded_least_recently_used_out_first() -> None:
    c = cache(size=3)
    for uid in "abc":
        upsert(c, PODS, obj(uid))
    assert c.get("a") is not None  # a is now the most recently used
    upsert(c, PODS, obj("d"))
    assert len(c) == 3
    assert c.get("b") is None and c.get("a") is not None and c.get("d") is not None


def test_a_deleted_object_is_kept_for_the_grace_period() -> None:
    clock = FakeClock()
    c = cache(clock, grace=60.0)
    deployment_chain(c)
    upsert(c, PODS, obj("p1", "web-5d9-abcde", owner=("ReplicaSet", "web-5d9", "rs1")), kind="delete")
    clock.advance(59)
    assert c.context(event_about("p1")) is not None
    clock.advance(2)
    assert c.context(event_about("p1")) is None
    assert c.get("rs1") is not None


def test_node_events_find_the_node_by_name() -> None:
    c = cache()
    upsert(c, NODES, obj("n-uid", "kwok-node-0", labels={"kubernetes.io/hostname": "x", "app": "n"}))
    # Kubelets write the node's name as the involved object's uid.
    assert c.context(event_about("kwok-node-0", "Node", "kwok-node-0"))["labels"] == ["app=n"]  # type: ignore[index]


def test_label_allow_list() -> None:
    allow = LabelAllow(["app.kubernetes.io/*", "app"])
    assert allow("app.kubernetes.io/name") and allow("app")
    assert not allow("application") and not allow("app.kubernetes.io") and not allow("team")


def test_the_enricher_adds_one_field_never_mutates_and_counts_what_it_cannot(caplog: pytest.LogCaptureFixture) -> None:
    clock = FakeClock()
    c = cache(clock)
    deployment_chain(c)
    enrich = Enricher(c, clock, log_every=60.0)
    original = event_about("p1")
    enriched = enrich(original)
    assert set(enriched) - set(original) == {FIELD} and FIELD not in original

    def count(outcome: str) -> float:
        return metrics.EVENTS_ENRICHED.labels(outcome=outcome)._value.get()  # type: ignore[no-any-return]

    before = count("unknown")
    with caplog.at_level(logging.INFO, logger="streams.ingest.metadata"):
        for _ in range(5):
            assert enrich(event_about("nope")) == event_about("nope")
        clock.advance(61)
        enrich(event_about("nope"))
    assert count("unknown") == before + 6
    lines = [m for m in caplog.messages if "event=enrich_unknown_objects" in m]
    assert len(lines) == 2 and "events=1" in lines[0] and "events=5" in lines[1]


# --- the leader's lifecycle -----------------------------------------------------------------------


class NoThread:
    def __init__(self) -> None:
        self.started: list[str] = []

    def __call__(self, name: str, target: Callable[[], None]) -> NoThread:
        self.started.append(name)
        return self

    def join(self, timeout: float | None = None) -> None:
        return None

    def is_alive(self) -> bool:
        return False


def enrichment(loop: asyncio.AbstractEventLoop) -> tuple[Enrichment, NoThread]:
    spawn = NoThread()
    settings = EnrichSettings(resources=(PODS, RS), labels=ALLOW, cache_size=10, grace=60.0)
    return Enrichment(loop, FakeKube(), FakeClock(), settings, spawn=spawn), spawn


async def test_watches_only_while_leading_and_drops_what_an_old_term_hands_over() -> None:
    e, spawn = enrichment(asyncio.get_running_loop())
    e.handle(Started(1, Checkpoint()))
    assert spawn.started == ["k8s-meta-pods", "k8s-meta-replicasets.apps"]
    old = e.generation
    e.batches.put(MetaItem("upsert", PODS, old, obj("p1")), e.watchers[0]._stop)
    assert e.take() == 1 and e.cache.get("p1") is not None
    e.handle(Stopped(1, "lost"))
    assert e.watchers == [] and all(w is not None for w in [spawn])
    e.handle(Started(2, Checkpoint()))
    e.batches.put(MetaItem("upsert", PODS, old, obj("stale")), e.watchers[0]._stop)
    assert e.take() == 0 and e.cache.get("stale") is None
    e.handle(Stopped(1, "an older term's end changes nothing"))
    assert e.leading


async def test_readiness_names_the_refused_kinds_and_stays_ready() -> None:
    e, _ = enrichment(asyncio.get_running_loop())
    e.handle(Started(1, Checkpoint()))
    g = e.generation
    stop = e.watchers[0]._stop
    e.batches.put(MetaItem("status", PODS, g, ok=True, detail="watching"), stop)
    e.batches.put(MetaItem("status", RS, g, ok=False, detail="forbidden (403): no"), stop)
    e.take()
    _, body = e.health.readiness.report()
    assert body["enrich"]["ok"] is True
    assert body["enrich"]["detail"] == "watching 1 of 2; not watched: replicasets.apps (forbidden (403): no)"
    assert metrics.ENRICH_WATCH_UP.labels(resource="replicasets.apps")._value.get() == 0
    assert metrics.ENRICH_WATCH_UP.labels(resource="pods")._value.get() == 1
    e.handle(Stopped(1, "lost"))
    assert "enrich" not in e.health.readiness.report()[1]


def scheduled(uid: str, object_rv: str) -> dict[str, Any]:
    event = event_about(uid)
    event["involvedObject"] |= {"apiVersion": "v1", "resourceVersion": object_rv}
    return event


def watching_pods_from_100() -> tuple[Enrichment, int, threading.Event]:
    """A leader's enrichment whose pod watch streams from resourceVersion 100 (not yet taken in)."""
    e, _ = enrichment(asyncio.get_running_loop())
    e.handle(Started(1, Checkpoint()))
    g, stop = e.generation, e.watchers[0]._stop
    e.batches.put(MetaItem("status", PODS, g, ok=True, detail="watching", resource_version="100"), stop)
    return e, g, stop


async def test_an_event_that_beats_its_object_into_the_cache_waits_for_it() -> None:
    # The Pod's Scheduled event arrives on the event watch before the pod watch delivers the Pod.
    e, g, stop = watching_pods_from_100()
    e.take()
    enriched = asyncio.ensure_future(e.enrich(scheduled("new", object_rv="105")))
    await asyncio.sleep(0)
    assert not enriched.done()  # the cache holds pods up to 100 only: the pod (105) is on its way
    e.batches.put(MetaItem("upsert", PODS, g, obj("new", rv="105", labels={"app": "web"})), stop)
    e.take()
    done = await asyncio.wait_for(enriched, 1.0)
    assert done[metadata.FIELD]["labels"] == ["app=web"]


async def test_an_object_older_than_what_the_cache_holds_is_unknown_at_once() -> None:
    # Deleted long ago (or never watched): no wait, the event goes on without the field.
    e, _, _ = watching_pods_from_100()
    e.take()
    done = await asyncio.wait_for(e.enrich(scheduled("gone", object_rv="90")), 0.5)
    assert metadata.FIELD not in done
    # Kinds the cache does not watch, and events naming no object version, never wait either.
    assert metadata.FIELD not in await asyncio.wait_for(e.enrich(event_about("x", kind="Widget")), 0.5)
    assert metadata.FIELD not in await asyncio.wait_for(e.enrich(event_about("y")), 0.5)


async def test_a_watch_that_does_not_catch_up_holds_one_event_at_most_hold_and_then_none() -> None:
    e, _, _ = watching_pods_from_100()
    e.take()
    loop = asyncio.get_running_loop()
    began = loop.time()
    before = metrics.ENRICH_HELD_TIMEOUTS.labels(resource="pods")._value.get()
    first = await e.enrich(scheduled("late", object_rv="200"))
    assert metadata.FIELD not in first and loop.time() - began >= metadata.HOLD * 0.9
    assert metrics.ENRICH_HELD_TIMEOUTS.labels(resource="pods")._value.get() == before + 1
    # The pods watch is now known to lag: the next events are not held.
    began = loop.time()
    await e.enrich(scheduled("later", object_rv="201"))
    assert loop.time() - began < metadata.HOLD / 2


async def test_a_watch_that_is_down_holds_nothing() -> None:
    e, g, stop = watching_pods_from_100()
    e.batches.put(MetaItem("status", PODS, g, ok=False, detail="connection: reset"), stop)
    e.take()
    done = await asyncio.wait_for(e.enrich(scheduled("new", object_rv="105")), 0.5)
    assert metadata.FIELD not in done
