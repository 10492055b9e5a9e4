"""The local-stack tool's process handling: clear errors naming the server, and nothing left behind."""

from __future__ import annotations

import socket
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from devstack import paths, process, wait
from devstack.errors import StackError


@pytest.fixture(autouse=True)
def state(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    monkeypatch.setenv("DEVSTACK_STATE", str(tmp_path))
    yield tmp_path
    for pidfile in (tmp_path / "pids").glob("*.pid"):
        process.kill(pidfile.stem)


def test_a_port_in_use_names_the_server_and_the_port() -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen()
        port = sock.getsockname()[1]
        with pytest.raises(StackError) as caught:
            process.require_ports_free("kafka", [port])
    assert str(caught.value).startswith(f"kafka: port(s) {port} on 127.0.0.1 already in use")


def test_a_missing_tool_says_what_to_install() -> None:
    with pytest.raises(StackError, match="etcd: `no-such-go` not found on PATH: install Go"):
        process.require_tool("etcd", "no-such-go", "install Go 1.26")


def test_a_failed_build_step_points_at_its_log(tmp_path: Path) -> None:
    log = tmp_path / "build.log"
    with pytest.raises(StackError) as caught:
        process.run_logged("kwok", ["sh", "-c", "echo compile error >&2; exit 3"], what="go build", log=log)
    assert str(caught.value) == f"kwok: go build failed with exit code 3 (log: {log})"
    assert "compile error" in log.read_text()


def test_a_server_that_dies_at_start_up_is_reported_with_its_log() -> None:
    process.spawn("elasticsearch", ["sh", "-c", "echo bad setting; exit 1"])
    with pytest.raises(StackError) as caught:
        process.wait_ready("elasticsearch", lambda: False, timeout=10)
    assert str(caught.value) == f"elasticsearch: exited during start-up (log: {paths.log_file('elasticsearch')})"
    assert "bad setting" in paths.log_file("elasticsearch").read_text()


def test_a_server_that_never_gets_ready_times_out_with_its_log() -> None:
    process.spawn("opensearch", ["sleep", "30"])
    started = time.monotonic()
    with pytest.raises(StackError, match=r"opensearch: not ready within 1s \(log: .*opensearch.log\)"):
        process.wait_ready("opensearch", lambda: False, timeout=1)
    assert time.monotonic() - started < 5


def test_stop_leaves_no_process_of_the_group_behind() -> None:
    pid = process.spawn("kwok", ["sh", "-c", "sleep 300 & sleep 300 & trap '' TERM; wait"])
    time.sleep(0.5)
    assert process.read_pid("kwok") == pid
    assert process.stop("kwok", timeout=2)
    assert not process._group_alive(pid)
    assert process.read_pid("kwok") is None


def test_ports_in_the_ephemeral_range_are_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    from devstack import ports

    low, _ = ports.ephemeral_range()
    monkeypatch.setenv("DEVSTACK_PORT_KAFKA", str(low + 10))
    with pytest.raises(ValueError, match="ephemeral port range"):
        ports.port("KAFKA")
    monkeypatch.setenv("DEVSTACK_PORT_KAFKA", "28092")
    assert ports.port("KAFKA") == 28092


class FakeClock:
    """Time that moves only when the code under test sleeps."""

    def __init__(self) -> None:
        self.now = 100.0
        self.sleeps: list[float] = []

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.now += seconds

    async def asleep(self, seconds: float) -> None:
        self.sleep(seconds)


def test_until_returns_the_first_ready_value() -> None:
    clock = FakeClock()
    values = iter([0, 0, 3, 4])
    got = wait.until("a count", lambda: next(values), timeout=10, interval=1, clock=clock, sleep=clock.sleep)
    assert got == 3
    assert clock.sleeps == [1, 1]


def test_until_uses_ready_for_values_that_are_falsy_but_done() -> None:
    clock = FakeClock()
    values = iter([2, 1, 0])
    got = wait.until("a drained queue", lambda: next(values), timeout=10, ready=lambda n: n == 0, clock=clock,
                     sleep=clock.sleep)  # fmt: skip
    assert got == 0


def test_until_times_out_with_what_it_waited_for_and_the_last_value() -> None:
    clock = FakeClock()
    values = iter(range(100))
    with pytest.raises(wait.WaitTimeout) as caught:
        wait.until("7 documents", lambda: next(values), timeout=3, interval=1, ready=lambda n: n >= 7,
                   detail=lambda: "log tail here", clock=clock, sleep=clock.sleep)  # fmt: skip
    message = str(caught.value)
    assert message.startswith("timed out after 3s waiting for 7 documents; last value: 3")
    assert message.endswith("\nlog tail here")
    assert caught.value.last == 3
    # Probed at 0, 1, 2 and once more at the deadline; never slept past it.
    assert clock.sleeps == [1, 1, 1]
    assert clock.now == 103


def test_until_never_sleeps_past_the_deadline() -> None:
    clock = FakeClock()
    with pytest.raises(wait.WaitTimeout):
        wait.until("never", lambda: False, timeout=2.5, interval=1, clock=clock, sleep=clock.sleep)
    assert clock.sleeps == [1, 1, 0.5]


def test_errors_that_mean_not_yet_are_waited_out_and_reported() -> None:
    clock = FakeClock()
    calls: Iterator[Exception | str] = iter([ConnectionRefusedError("starting"), ConnectionResetError("again"), "ok"])

    def probe() -> str:
        item = next(calls)
        if isinstance(item, Exception):
            raise item
        return item

    assert wait.until("up", probe, timeout=10, not_yet=lambda e: isinstance(e, OSError), clock=clock,
                      sleep=clock.sleep) == "ok"  # fmt: skip

    def refused() -> str:
        raise ConnectionRefusedError("still starting")

    with pytest.raises(wait.WaitTimeout) as caught:
        wait.until("up", refused, timeout=1, not_yet=lambda e: isinstance(e, OSError), clock=clock, sleep=clock.sleep)
    assert "last value: (none: every probe raised)" in str(caught.value)
    assert "last error: ConnectionRefusedError('still starting')" in str(caught.value)
    assert isinstance(caught.value.__cause__, ConnectionRefusedError)


def test_other_errors_propagate_at_once() -> None:
    clock = FakeClock()

    def broken() -> int:
        raise KeyError("bug")

    with pytest.raises(KeyError):
        wait.until("x", broken, timeout=60, not_yet=lambda e: isinstance(e, OSError), clock=clock, sleep=clock.sleep)
    assert clock.sleeps == []


async def test_until_async_waits_without_blocking_and_times_out_alike() -> None:
    clock = FakeClock()
    values = iter([None, None, {"ok": 1}])

    async def probe() -> dict[str, int] | None:
        return next(values)

    got = await wait.until_async("a body", probe, timeout=5, interval=2, clock=clock, sleep=clock.asleep)
    assert got == {"ok": 1}
    assert clock.sleeps == [2, 2]

    async def empty() -> list[int]:
        return []

    with pytest.raises(wait.WaitTimeout, match=r"waiting for records; last value: \[\]"):
        await wait.until_async("records", empty, timeout=1, clock=clock, sleep=clock.asleep)


def test_holds_checks_all_through_the_window() -> None:
    clock = FakeClock()
    assert wait.holds("still 5", lambda: 5, duration=2, interval=1, ready=lambda n: n == 5, clock=clock,
                      sleep=clock.sleep) == 5  # fmt: skip
    assert clock.sleeps == [1, 1]
    values = iter([5, 5, 6, 5])
    with pytest.raises(wait.WaitTimeout, match="still 5 stopped holding; value: 6"):
        wait.holds("still 5", lambda: next(values), duration=10, interval=1, ready=lambda n: n == 5, clock=clock,
                   sleep=clock.sleep)  # fmt: skip


def test_search_errors_of_a_fresh_index_are_not_yet_but_a_bad_query_is_an_error() -> None:
    import elastic_transport
    import elasticsearch
    import opensearchpy

    from devstack import transient

    def es_error(status: int, kind: str) -> elasticsearch.ApiError:
        meta = elastic_transport.ApiResponseMeta(status, "1.1", elastic_transport.HttpHeaders(), 0.0, None)  # type: ignore[arg-type]
        return elasticsearch.ApiError(kind, meta, {"error": {"type": kind}, "status": status})

    assert transient.search(es_error(503, "search_phase_execution_exception"))
    assert transient.search(es_error(503, "no_shard_available_action_exception"))
    assert transient.search(es_error(404, "index_not_found_exception"))
    assert not transient.search(es_error(400, "search_phase_execution_exception"))
    assert not transient.search(es_error(403, "security_exception"))
    assert transient.search(elastic_transport.ConnectionError("refused"))
    assert transient.search(opensearchpy.TransportError(503, "no_shard_available_action_exception", {}))
    assert not transient.search(opensearchpy.TransportError(400, "parsing_exception", {}))
    assert transient.search(opensearchpy.ConnectionError("N/A", "refused", None))
    assert not transient.search(ValueError("a bug"))


def test_kube_and_kafka_errors_while_servers_start_are_not_yet() -> None:
    from aiokafka import errors
    from kubernetes.client.exceptions import ApiException

    from devstack import transient

    assert transient.kube(ApiException(status=503))
    assert transient.kube(ApiException(status=429))
    assert not transient.kube(ApiException(status=409))
    assert transient.kube_status(409)(ApiException(status=409))
    assert not transient.kube(ApiException(status=403))
    assert transient.kafka(errors.UnknownTopicOrPartitionError())
    assert transient.kafka(errors.KafkaConnectionError())
    assert transient.kafka(errors.CoordinatorLoadInProgressError())
    assert not transient.kafka(errors.TopicAuthorizationFailedError())


def test_the_second_api_server_and_its_load_balancer_start_only_when_named() -> None:
    from devstack import stack

    default = [s.name for s in stack.select([])]
    every = [s.name for s in stack.select([], every=True)]
    assert "kube-apiserver" in default
    assert not {"kube-apiserver-2", "kube-apiserver-lb"} & set(default)
    assert every == [*default[: default.index("kube-apiserver") + 1], "kube-apiserver-2",
                     *default[default.index("kube-apiserver") + 1 :], "kube-apiserver-lb"]  # fmt: skip
    # The load balancer pulls in both servers and their etcd, and starts after them.
    assert [s.name for s in stack.select(["kube-apiserver-lb"])] == [
        "etcd", "kube-apiserver", "kube-apiserver-2", "kube-apiserver-lb"]  # fmt: skip
    assert [s.name for s in stack.select(["kube-ha"])] == [s.name for s in stack.select(["kube-apiserver-lb"])]


def test_the_second_api_server_has_a_port_and_certificates_of_its_own(monkeypatch: pytest.MonkeyPatch) -> None:
    from devstack import kube_auth

    monkeypatch.setenv("DEVSTACK_PORT_KUBE_APISERVER", "16443")
    monkeypatch.setenv("DEVSTACK_PORT_KUBE_APISERVER_2", "16444")
    assert kube_auth.apiserver_url("kube-apiserver-2") == "https://127.0.0.1:16444"
    assert kube_auth.apiserver_url() == "https://127.0.0.1:16443"
    assert kube_auth.serving_ca("kube-apiserver-2") != kube_auth.serving_ca()
    assert kube_auth.server_kubeconfig("kube-apiserver") == kube_auth.kubeconfig_path()
