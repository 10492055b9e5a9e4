"""The local-stack tool's process handling: clear errors naming the server, and nothing left behind."""

from __future__ import annotations

import socket
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from devstack import paths, process
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
