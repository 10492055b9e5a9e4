"""What a benchmark reports: the machine, server versions, percentiles, and the saved report."""

from __future__ import annotations

import contextlib
import importlib.metadata
import json
import math
import os
import platform
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from bench.search import es_client
from bench.stack import OUT


def percentile(values: Sequence[float], pct: float) -> float:
    """Nearest-rank percentile (0 for no values)."""
    if not values:
        return 0.0
    ordered = sorted(values)
    rank = max(1, math.ceil(pct / 100 * len(ordered)))
    return ordered[min(rank, len(ordered)) - 1]


def machine() -> dict[str, str]:
    cpu = "?"
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    mem = "?"
    with contextlib.suppress(OSError):
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                mem = f"{int(line.split()[1]) / 1024 / 1024:.1f} GiB"
    load = " ".join(f"{x:.2f}" for x in os.getloadavg())
    versions = {}
    for package in ("faust-streaming", "aiokafka", "elasticsearch", "kubernetes"):
        with contextlib.suppress(importlib.metadata.PackageNotFoundError):
            versions[package] = importlib.metadata.version(package)
    return {
        "cores": str(os.cpu_count()),
        "cpu": cpu,
        "memory": mem,
        "load average at start": load,
        "python": platform.python_version(),
        **versions,
    }


def server_versions(stack: dict[str, str]) -> dict[str, str]:
    out: dict[str, str] = {}
    with contextlib.suppress(Exception):
        out["elasticsearch server"] = str(es_client(stack).info()["version"]["number"])
    with contextlib.suppress(Exception):
        from kubernetes import client, config

        api = config.new_client_from_config(config_file=stack["KUBECONFIG"])
        out["kube-apiserver"] = str(client.VersionApi(api).get_code().git_version)
    return out


# The settings a report shows (the rest are defaults that do not shape the figures).
SHOWN_SETTINGS = (
    "K8SEV_TOPIC_PARTITIONS",
    "K8SEV_BULK_SIZE",
    "K8SEV_BULK_WITHIN",
    "K8SEV_INDEX_REFRESH_INTERVAL",
    "K8SEV_INDEX_REPLICAS",
    "K8SEV_LIST_PAGE_SIZE",
    "K8SEV_INGEST_QUEUE",
    "K8SEV_INGEST",
    "K8SEV_NAMESPACES",
    "K8SEV_DEDUP_HORIZON",
    "K8SEV_STORE",
    "K8SEV_ROLE",
)


def shown_settings(env: dict[str, str]) -> dict[str, str]:
    from streams.config.settings import Settings

    settings = Settings.from_env(env)
    described = settings.describe()
    out: dict[str, str] = {}
    for var in SHOWN_SETTINGS:
        # Grouped settings describe themselves as "<group>.<field>".
        key = var.removeprefix("K8SEV_").lower()
        found = [value for name, value in described.items() if name.rpartition(".")[2] == key]
        out[var] = env.get(var, found[0] if found else "?")
    return out


class Report:
    """Sections of (label, value) rows, printed aligned and saved as JSON under bench/out/."""

    def __init__(self, bench: str, argv: Sequence[str]) -> None:
        self.bench = bench
        self.command = " ".join([".venv/bin/python -m", f"bench.{bench}", *argv])
        self.sections: dict[str, dict[str, Any]] = {}
        self.started = datetime.now(UTC)

    def add(self, section: str, label: str, value: Any) -> None:
        self.sections.setdefault(section, {})[label] = value
        print(f"  [{section}] {label}: {value}", flush=True)

    def add_machine(self, stack: dict[str, str]) -> None:
        """The machine and the servers' versions: what a figure is read against."""
        for key, value in {**machine(), **server_versions(stack)}.items():
            self.add("machine", key, value)

    def add_settings(self, env: dict[str, str]) -> None:
        for key, value in shown_settings(env).items():
            self.add("settings", key, value)

    def render(self) -> str:
        lines = [f"== bench.{self.bench}  ({self.started:%Y-%m-%d %H:%M} UTC)", f"command: {self.command}"]
        for section, rows in self.sections.items():
            lines.append(f"-- {section}")
            width = max((len(label) for label in rows), default=0)
            lines.extend(f"   {label.ljust(width)}  {value}" for label, value in rows.items())
        return "\n".join(lines)

    def save(self) -> Path:
        OUT.mkdir(parents=True, exist_ok=True)
        path = OUT / f"{self.bench}-{self.started:%Y%m%dT%H%M%S}.json"
        path.write_text(json.dumps({"command": self.command, "sections": self.sections}, indent=2, default=str))
        text_path = path.with_suffix(".txt")
        text_path.write_text(self.render() + "\n")
        return path


def log(message: str) -> None:
    print(f"{datetime.now():%H:%M:%S} {message}", flush=True)


def main(parse: Callable[[list[str] | None], Any], run: Callable[[Any], Any], argv: list[str] | None = None) -> None:
    """The command line of every benchmark: parse, run, save the report and print it."""
    report = run(parse(argv))
    path = report.save()
    print(report.render())
    print(f"saved {path}")
