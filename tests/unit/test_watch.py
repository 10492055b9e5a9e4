"""The LIST+WATCH state machine against a scripted API: 410s, expired continue tokens, bookmarks, idle, stop."""

from __future__ import annotations

import threading
from datetime import timedelta

from streams.core import metrics
from streams.ingest.watch import GONE_RETRIES, GONE_RETRY_DELAY, Handoff, Watcher, WatchItem, WatchSettings
from streams.kube.api import ApiError, IdleTimeout
from tests.unit.kube_fakes import Collect, FakeClock, FakeKube, FakeResponse, event, gone, note, page


def watcher(kube: FakeKube, out: Collect | Handoff, clock: FakeClock, **kwargs: object) -> Watcher:
    return Watcher(
        kube,
        out,
        clock,
        namespace=None,
        generation=7,
        settings=WatchSettings(page_size=2, watch_timeout=60, idle_timeout=90, event_ttl=3600),
        **kwargs,  # type: ignore[arg-type]
    )


def kinds(out: Collect) -> list[tuple[str, str]]:
    return [(item.kind, item.resource_version) for _, _, item in out.items]


def restarts(cause: str) -> float:
    return metrics.WATCH_RESTARTS.labels(cause=cause)._value.get()  # type: ignore[no-any-return]


def test_lists_in_pages_then_watches_from_the_list_version() -> None:
    kube, out, clock = FakeKube(), Collect(), FakeClock()
    w = watcher(kube, out, clock)
    kube.lists = [page([event("a", "1"), event("b", "2")], token="c1"), page([event("c", "3")], rv="10")]
    kube.watches = [[note("ADDED", event("d", "11")), note("MODIFIED", event("d", "12")), w.stop]]
    w.run()
    assert kube.list_calls == [None, "c1"]
    assert kube.watch_calls == ["10"]
    assert kinds(out) == [
        ("listed", "1"),
        ("listed", "2"),
        ("listed", "3"),
        ("synced", "10"),
        ("added", "11"),
        ("modified", "12"),
    ]
    assert all(generation == 7 and scope == "*" for generation, scope, _ in out.items)
    listed = out.items[0][2].event
    assert listed is not None and listed["kind"] == "Event" and listed["apiVersion"] == "v1"


def test_410_mid_stream_retries_the_watch_then_lists_again_and_watches_from_the_new_list() -> None:
    kube, out, clock = FakeKube(), Collect(), FakeClock()
    w = watcher(kube, out, clock)
    kube.lists = [page([], rv="10"), page([event("a", "30")], rv="40")]
    kube.watches = [[note("ADDED", event("x", "11")), gone(), note("ADDED", event("never", "12"))], [gone()], [gone()],
                    [w.stop]]  # fmt: skip
    before = restarts("gone")
    w.run()
    # From where it got to, GONE_RETRIES more times, then the relist.
    assert kube.watch_calls == ["10", "11", "11", "40"]
    assert kinds(out) == [("synced", "10"), ("added", "11"), ("listed", "30"), ("synced", "40")]
    assert restarts("gone") == before + 1 + GONE_RETRIES
    assert clock.waits == [GONE_RETRY_DELAY] * GONE_RETRIES


def test_a_410_from_one_server_and_a_watch_another_serves_from_the_same_point_loses_nothing() -> None:
    # A server whose watch cache just started answers 410 for a point etcd still has; the retry lands
    # on a server that serves it: every version since arrives, and there is no relist.
    kube, out, clock = FakeKube(), Collect(), FakeClock()
    w = watcher(kube, out, clock)
    kube.lists = [page([], rv="10")]
    kube.watches = [[note("ADDED", event("x", "11")), gone()],
                    [note("MODIFIED", event("x", "12")), note("MODIFIED", event("x", "13")), w.stop]]  # fmt: skip
    w.run()
    assert kube.list_calls == [None]
    assert kube.watch_calls == ["10", "11"]
    assert kinds(out) == [("synced", "10"), ("added", "11"), ("modified", "12"), ("modified", "13")]


def test_expired_continue_token_starts_the_list_over() -> None:
    kube, out, clock = FakeKube(), Collect(), FakeClock()
    w = watcher(kube, out, clock)
    kube.lists = [
        page([event("a", "1")], token="c1"),
        ApiError(410, "Expired", "continue token expired"),
        page([event("a", "1")], token="c2"),
        page([event("b", "2")], rv="20"),
    ]
    kube.watches = [[w.stop]]
    w.run()
    assert kube.list_calls == [None, "c1", None, "c2"]
    assert kinds(out)[-1] == ("synced", "20")
    assert kube.watch_calls == ["20"]


def test_bookmarks_move_the_resume_point() -> None:
    kube, out, clock = FakeKube(), Collect(), FakeClock()
    w = watcher(kube, out, clock, resume=("5", clock.now()))
    kube.watches = [
        [note("BOOKMARK", {"kind": "Event", "metadata": {"resourceVersion": "99"}})],  # server ends the watch
        [note("DELETED", event("old", "120")), w.stop],
    ]
    w.run()
    assert kube.list_calls == []  # resumed, no LIST
    assert kube.watch_calls == ["5", "99"]
    assert kinds(out) == [("bookmark", "99")]
    assert w.resource_version == "120"  # a deletion moves the point but is not handed on


def test_idle_timeout_reconnects_after_a_back_off_without_listing() -> None:
    kube, out, clock = FakeKube(), Collect(), FakeClock()
    w = watcher(kube, out, clock, resume=("5", clock.now()))
    statuses: list[tuple[bool, str]] = []
    w._status = lambda generation, scope, ok, detail: statuses.append((ok, detail))
    kube.watches = [[note("ADDED", event("a", "6")), IdleTimeout("read timed out")], [w.stop]]
    before = restarts("idle")
    w.run()
    assert kube.watch_calls == ["5", "6"]
    assert restarts("idle") == before + 1
    assert len(clock.waits) == 1 and 0.5 <= clock.waits[0] <= 1.0
    assert (False, "idle: read timed out") in statuses
    assert statuses[-1] == (False, "stopped")


def test_stop_while_a_list_page_is_in_flight_closes_it_and_returns() -> None:
    kube, out, clock = FakeKube(), Collect(), FakeClock()
    w = watcher(kube, out, clock)
    blocked = FakeResponse(page([event("b", "2")], rv="10"))
    # The second page's read is where the stop arrives (from the loop's thread, in production).
    original_json = blocked.json

    def stop_then_read() -> dict[str, object]:
        w.stop()
        return original_json()

    blocked.json = stop_then_read  # type: ignore[method-assign]
    kube.lists = [page([event("a", "1")], token="c1"), blocked]
    w.run()
    assert blocked.closed
    assert kube.list_calls == [None, "c1"]
    assert kube.watch_calls == []
    assert kinds(out) == [("listed", "1")]  # no synced: the list never finished


def test_stop_before_a_page_request_returns_without_it() -> None:
    kube, out, clock = FakeKube(), Collect(), FakeClock()
    w = watcher(kube, out, clock)

    def first_page() -> dict[str, object]:
        w.stop()
        return page([event("a", "1")], token="c1")

    kube.lists = [first_page]
    w.run()
    assert kube.list_calls == [None]
    assert kube.responses[0].closed
    assert out.items == []


def test_a_410_after_a_pause_longer_than_the_event_ttl_is_reported() -> None:
    kube, out, clock = FakeKube(), Collect(), FakeClock()
    w = watcher(kube, out, clock, resume=("5", clock.now() - timedelta(hours=2)))
    kube.watches = [[gone()], [gone()], [gone()], [w.stop]]
    kube.lists = [page([], rv="50")]
    before = metrics.WATCH_GAPS._value.get()
    w.run()
    assert metrics.WATCH_GAPS._value.get() == before + 1


def test_a_failing_api_backs_off_with_jitter_and_growing_delays() -> None:
    kube, out, clock = FakeKube(), Collect(), FakeClock()
    w = watcher(kube, out, clock, resume=("5", clock.now()))
    kube.watches = [ApiError(500, "Internal"), ApiError(500, "Internal"), ApiError(500, "Internal"), [w.stop]]
    w.run()
    assert len(clock.waits) == 3
    assert 0.5 <= clock.waits[0] <= 1 and 1 <= clock.waits[1] <= 2 and 2 <= clock.waits[2] <= 4


def test_handoff_batches_and_wakes_once_per_batch() -> None:
    wakes: list[int] = []
    handoff = Handoff(capacity=10, wake=lambda: wakes.append(1))
    stop = threading.Event()
    for rv in range(5):
        handoff.put((1, "*", WatchItem("added", str(rv))), stop)
    assert len(wakes) == 1
    batch, more = handoff.take(3)
    assert [item.resource_version for _, _, item in batch] == ["0", "1", "2"] and more
    batch, more = handoff.take(3)
    assert len(batch) == 2 and not more
    handoff.put((1, "*", WatchItem("added", "9")), stop)
    assert len(wakes) == 2


def test_handoff_blocks_a_full_producer_until_taken_or_stopped() -> None:
    handoff = Handoff(capacity=1, wake=lambda: None)
    stop = threading.Event()
    handoff.put((1, "*", WatchItem("added", "1")), stop)
    done = threading.Event()
    stopped = threading.Event()

    def produce() -> None:
        try:
            handoff.put((1, "*", WatchItem("added", "2")), stop)
            done.set()
        except Exception:
            stopped.set()

    thread = threading.Thread(target=produce)
    thread.start()
    assert not done.wait(0.05)  # still blocked: the buffer is full (a bound, not synchronisation)
    handoff.take(10)
    assert done.wait(5)
    thread.join(5)
    # Full again: a stop (as Watcher.stop does) wakes the blocked producer with WatchStopped.
    thread = threading.Thread(target=produce)
    thread.start()
    stop.set()
    handoff.release()
    assert stopped.wait(5)
    thread.join(5)


def stalls() -> float:
    return metrics.WATCH_STALLS._value.get()  # type: ignore[no-any-return]


def test_a_silent_watch_with_newer_events_in_the_scope_is_a_stall_and_lists_again() -> None:
    """The API server accepted the WATCH and sent nothing while its scope changed (issue 17)."""
    kube, out, clock = FakeKube(), Collect(), FakeClock()
    statuses: list[tuple[bool, str]] = []
    w = watcher(kube, out, clock, status=lambda g, s, ok, detail: statuses.append((ok, detail)))
    kube.lists = [
        page([event("a", "9")], rv="10"),
        page([event("a", "9"), event("b", "15")], rv="16"),  # the check: b is past 10, never delivered
        page([event("a", "9"), event("b", "15")], rv="16"),  # the relist
    ]
    kube.watches = [[lambda: clock.advance(60)], [lambda: clock.advance(61)], [note("ADDED", event("c", "17")), w.stop]]
    before = stalls()
    w.run()
    assert kube.watch_calls == ["10", "10", "16"]
    assert stalls() == before + 1
    assert (False, "stalled at resourceVersion 10: the scope has 15, never delivered") in statuses
    assert kinds(out)[-4:] == [("listed", "9"), ("listed", "15"), ("synced", "16"), ("added", "17")]


def test_a_silent_watch_of_a_quiet_scope_is_not_a_stall() -> None:
    kube, out, clock = FakeKube(), Collect(), FakeClock()
    w = watcher(kube, out, clock)
    kube.lists = [page([event("a", "9")], rv="10"), page([event("a", "9")], rv="10")]
    # Silent for 121 s, checked (nothing newer), then silent again: no second check before 120 s more.
    kube.watches = [[lambda: clock.advance(121)], [lambda: clock.advance(60)], [w.stop]]
    before = stalls()
    w.run()
    assert kube.watch_calls == ["10", "10", "10"]
    assert len(kube.list_calls) == 2  # the first LIST and one check
    assert stalls() == before
