"""Detached server processes: spawn with a pid file, probe until ready, stop the whole group."""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import subprocess
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path

from devstack import paths, wait
from devstack.errors import StackError


def port_in_use(port: int, host: str = "127.0.0.1") -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.settimeout(0.5)
        return sock.connect_ex((host, port)) == 0


def require_ports_free(server: str, ports: Sequence[int]) -> None:
    busy = [p for p in ports if port_in_use(p)]
    if busy:
        raise StackError(
            server,
            f"port(s) {', '.join(map(str, busy))} on 127.0.0.1 already in use by another process "
            "(find it with `ss -ltnp`; stop it, or run `python -m devstack down` if it is ours)",
        )


def require_tool(server: str, tool: str, hint: str) -> str:
    found = shutil.which(tool)
    if not found:
        raise StackError(server, f"`{tool}` not found on PATH: {hint}")
    return found


def run_logged(
    server: str,
    argv: Sequence[str],
    *,
    what: str,
    log: Path,
    cwd: Path | None = None,
    env: Mapping[str, str] | None = None,
    timeout: float | None = None,
) -> None:
    """Run a provisioning step (download, build); on failure point at its log."""
    log.parent.mkdir(parents=True, exist_ok=True)
    with log.open("ab") as out:
        out.write(f"\n$ {_shown(argv)}\n".encode())
        out.flush()
        try:
            proc = subprocess.run(
                list(argv),
                cwd=cwd,
                env={**os.environ, **(env or {})},
                stdout=out,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                timeout=timeout,
                check=False,
            )
        except subprocess.TimeoutExpired:
            raise StackError(server, f"{what} did not finish within {timeout:.0f}s", log) from None
        except FileNotFoundError as exc:
            raise StackError(server, f"{what}: {exc}", log) from None
    if proc.returncode != 0:
        raise StackError(server, f"{what} failed with exit code {proc.returncode}", log)


def read_pid(server: str) -> int | None:
    """The pid of our running server, or None (a stale pid file is removed)."""
    pidfile = paths.pid_file(server)
    try:
        pid = int(pidfile.read_text().strip())
    except (FileNotFoundError, ValueError):
        return None
    if _alive(pid):
        return pid
    pidfile.unlink(missing_ok=True)
    return None


#: Servers this process started: kept so their exit is reaped (no zombie, no ResourceWarning).
_CHILDREN: dict[int, subprocess.Popen[bytes]] = {}


def _reap(pid: int) -> None:
    child = _CHILDREN.pop(pid, None)
    if child is not None:
        with contextlib.suppress(subprocess.TimeoutExpired):
            child.wait(timeout=5)


def _alive(pid: int) -> bool:
    child = _CHILDREN.get(pid)
    if child is not None:
        if child.poll() is None:
            return True
        del _CHILDREN[pid]
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    # A zombie still answers kill(0); treat it as gone.
    with contextlib.suppress(OSError):
        stat = Path(f"/proc/{pid}/stat").read_text()
        if stat.rsplit(")", 1)[1].split()[0] == "Z":
            return False
    return True


def _shown(argv: Sequence[str]) -> str:
    # Class paths run to thousands of characters; the log needs the shape, not every jar.
    return " ".join(a if len(a) <= 300 else f"{a[:120]}...({len(a)} chars)" for a in argv)


def spawn(
    server: str,
    argv: Sequence[str],
    *,
    cwd: Path | None = None,
    env: Mapping[str, str] | None = None,
) -> int:
    """Start a server detached in its own session (so `down` can kill its whole group)."""
    log = paths.log_file(server)
    log.parent.mkdir(parents=True, exist_ok=True)
    pidfile = paths.pid_file(server)
    pidfile.parent.mkdir(parents=True, exist_ok=True)
    with log.open("ab") as out:
        out.write(f"\n=== {time.strftime('%Y-%m-%dT%H:%M:%S')} $ {_shown(argv)}\n".encode())
        out.flush()
        try:
            proc = subprocess.Popen(
                list(argv),
                cwd=cwd,
                env={**os.environ, **(env or {})},
                stdout=out,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                start_new_session=True,
            )
        except OSError as exc:
            raise StackError(server, f"could not start {argv[0]}: {exc}", log) from None
    pidfile.write_text(f"{proc.pid}\n")
    _CHILDREN[proc.pid] = proc
    return proc.pid


def wait_ready(server: str, probe: Callable[[], bool], timeout: float) -> None:
    """Poll ``probe`` until it is true; fail early if the process died."""
    log = paths.log_file(server)

    def ready() -> bool:
        if read_pid(server) is None:
            raise StackError(server, "exited during start-up", log)
        return probe()

    try:
        # Any error of the probe (connection refused, a 503) means the server is still starting.
        wait.until(f"{server} ready", ready, timeout=timeout, not_yet=lambda exc: not isinstance(exc, StackError))
    except wait.WaitTimeout as exc:
        # The last probe error (if any) stays attached as the cause.
        raise StackError(server, f"not ready within {timeout:.0f}s", log) from exc.error


def _wait_group_gone(pid: int, timeout: float, interval: float = 0.2) -> bool:
    try:
        wait.until(f"process group {pid} to exit", lambda: not _group_alive(pid), timeout=timeout, interval=interval)
    except wait.WaitTimeout:
        return False
    return True


def stop(server: str, timeout: float = 30.0) -> bool:
    """SIGTERM the server's process group, then SIGKILL what is left. True if it was running."""
    pid = read_pid(server)
    if pid is None:
        return False
    _signal_group(pid, signal.SIGTERM)
    if not _wait_group_gone(pid, timeout):
        _signal_group(pid, signal.SIGKILL)
        _wait_group_gone(pid, 10, interval=0.1)
    _reap(pid)
    paths.pid_file(server).unlink(missing_ok=True)
    return True


def kill(server: str) -> bool:
    """SIGKILL the server's process group at once (for fault injection)."""
    pid = read_pid(server)
    if pid is None:
        return False
    _signal_group(pid, signal.SIGKILL)
    _wait_group_gone(pid, 10, interval=0.1)
    _reap(pid)
    paths.pid_file(server).unlink(missing_ok=True)
    return True


def _signal_group(pid: int, sig: signal.Signals) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pid, sig)


def _group_alive(pgid: int) -> bool:
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        with contextlib.suppress(OSError, IndexError, ValueError):
            fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
            # fields[0] is the state, fields[2] the process group id.
            if int(fields[2]) == pgid and fields[0] != "Z":
                return True
    return False


def http_ok(url: str, *, timeout: float = 2.0, expect: bytes | None = None) -> bool:
    """True when ``url`` answers 2xx (and its body contains ``expect``, if given)."""
    try:
        with urllib.request.urlopen(url, timeout=timeout) as resp:  # noqa: S310 - loopback only
            body = resp.read()
    except (urllib.error.URLError, OSError):
        return False
    return expect is None or expect in body
