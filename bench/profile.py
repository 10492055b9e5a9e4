"""Sampling profiles of the worker with py-spy (dev extra), and a summary of where its time goes.

``Profiler(pid, path)`` records while a benchmark runs (``--profile`` on bench.ingest/bench.sink);
``python -m bench.profile FILE`` summarises a recording again: self and inclusive time per function,
and per area (JSON, Faust records, Kafka client, search client, ...).
"""

from __future__ import annotations

import argparse
import collections
import re
import shutil
import signal
import subprocess
import sys
from pathlib import Path

# Where a frame's file lives -> the area its time is charged to (first match wins).
AREAS: tuple[tuple[str, str], ...] = (
    ("/json/", "json (stdlib)"),
    ("faust/models/", "faust records"),
    ("faust/serializers/", "faust serializers/codecs"),
    ("faust/tables/", "faust tables"),
    ("faust/transport/", "faust transport"),
    ("faust/streams.py", "faust streams"),
    ("faust/", "faust (other)"),
    ("mode/", "mode (faust services)"),
    ("aiokafka/", "aiokafka"),
    ("kafka/", "aiokafka"),
    ("elastic_transport/", "elasticsearch client"),
    ("elasticsearch/", "elasticsearch client"),
    ("aiohttp/", "aiohttp"),
    ("urllib3/", "urllib3 (kubernetes)"),
    ("kubernetes/", "kubernetes client"),
    ("prometheus_client/", "prometheus metrics"),
    ("asyncio/", "asyncio"),
    ("/streams/agents/", "agents (ours)"),
    ("/streams/tables/", "tables (ours)"),
    ("/agents/", "agents (ours)"),
    ("/tables/", "tables (ours)"),
    ("/streams/", "streams (ours)"),
    ("logging/", "logging"),
    ("ssl.py", "ssl"),
)

_FRAME = re.compile(r"^(?P<func>.*?) \((?P<file>[^:()]*)(?::\d+)?\)$")


def area(file: str) -> str:
    # py-spy shortens paths relative to sys.path entries ("json/decoder.py", "streams/search/indexer.py").
    file = file if file.startswith("/") else "/" + file
    for needle, name in AREAS:
        if needle in file:
            return name
    return "other"


class Profiler:
    """``py-spy record`` attached to ``pid`` until :meth:`stop` (or ``max_seconds``)."""

    def __init__(self, pid: int, path: Path, rate: int = 100, max_seconds: int = 1800) -> None:
        exe = shutil.which("py-spy") or str(Path(sys.executable).with_name("py-spy"))
        path.parent.mkdir(parents=True, exist_ok=True)
        self.path = path
        self._proc = subprocess.Popen(
            [
                exe,
                "record",
                "--pid",
                str(pid),
                "--rate",
                str(rate),
                "--format",
                "raw",
                "--output",
                str(path),
                "--nonblocking",
                "--duration",
                str(max_seconds),
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
        )

    def stop(self) -> Path:
        if self._proc.poll() is None:
            self._proc.send_signal(signal.SIGINT)
            try:
                self._proc.wait(30)
            except subprocess.TimeoutExpired:
                self._proc.kill()
                self._proc.wait(5)
        return self.path


def frames(stack: str) -> list[tuple[str, str]]:
    out = []
    for frame in stack.split(";"):
        match = _FRAME.match(frame.strip())
        if match:
            out.append((match.group("func"), match.group("file")))
    return out


def summarize(path: Path, top: int = 20) -> str:
    """Self and inclusive sample shares per function and per area, from a py-spy raw recording."""
    self_fn: collections.Counter[str] = collections.Counter()
    incl_fn: collections.Counter[str] = collections.Counter()
    self_area: collections.Counter[str] = collections.Counter()
    incl_area: collections.Counter[str] = collections.Counter()
    total = 0
    for line in path.read_text(errors="replace").splitlines():
        stack, _, count_text = line.rpartition(" ")
        if not count_text.isdigit():
            continue
        count = int(count_text)
        stack_frames = frames(stack)
        if not stack_frames:
            continue
        total += count
        func, file = stack_frames[-1]
        self_fn[f"{func} ({_short(file)})"] += count
        self_area[area(file)] += count
        for key in {f"{f} ({_short(p)})" for f, p in stack_frames}:
            incl_fn[key] += count
        for name in {area(p) for _, p in stack_frames}:
            incl_area[name] += count
    if not total:
        return f"{path}: no samples"

    def table(title: str, counter: collections.Counter[str]) -> list[str]:
        rows = [title]
        rows.extend(f"  {100 * n / total:5.1f}%  {key}" for key, n in counter.most_common(top))
        return rows

    lines = [f"{path}: {total} samples (active threads only)"]
    lines += table("self time by area:", self_area)
    lines += table("inclusive time by area (a sample counts once per area on its stack):", incl_area)
    lines += table("self time by function:", self_fn)
    lines += table("inclusive time by function:", incl_fn)
    return "\n".join(lines)


def _short(file: str) -> str:
    for marker in ("site-packages/", "/work/main/", "python3.11/"):
        at = file.find(marker)
        if at >= 0:
            return file[at + len(marker) :]
    return file


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.profile", description=__doc__)
    parser.add_argument("recording", type=Path, help="a py-spy --format raw recording")
    parser.add_argument("--top", type=int, default=20)
    args = parser.parse_args(argv)
    print(summarize(args.recording, args.top))


if __name__ == "__main__":
    main()
