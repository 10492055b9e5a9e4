"""Binaries built from published Go modules with the Go toolchain, into the user cache.

Each :class:`GoTool` is built in a small generated helper module under ``<cache>/gobuild/<name>-<version>``
(its go.mod and go.sum live there, never in the repo) with ``GOMODCACHE``/``GOCACHE`` under
``<cache>/go`` and ``CGO_ENABLED=0``; binaries land in ``<cache>/bin/<name>-<version>``, so a warm
``provision`` only checks that they exist. The go.mod names the main packages as ``tool`` lines, so no
Go source is needed. ``k8s.io/kubernetes`` cannot be required as published (its go.mod points every
staging module at ``./staging/src/...`` and a dependency's replaces are ignored), so the helper go.mod
is generated from the served one with a ``replace k8s.io/<m> => k8s.io/<m> v0.<minor>.<patch>`` per
staging module.
"""

from __future__ import annotations

import contextlib
import fcntl
import re
import shutil
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from devstack import paths, process
from devstack.errors import StackError

if TYPE_CHECKING:
    from collections.abc import Callable, Iterator, Mapping

GO_HINT = "install Go 1.26 or newer from https://go.dev/dl and put its bin directory on PATH"


@dataclass(frozen=True)
class GoTool:
    """Binaries built from one published Go module at a pinned version."""

    name: str
    module: str
    version: str
    #: Binary name -> main package.
    binaries: Mapping[str, str]
    ldflags: Callable[[], str] = field(default=lambda: "-s -w")
    #: Go build tags (``go build -tags``).
    tags: tuple[str, ...] = ()

    def bin_dir(self) -> Path:
        return paths.cache_dir() / "bin" / f"{self.name}-{self.version}"

    def work_dir(self) -> Path:
        return paths.cache_dir() / "gobuild" / f"{self.name}-{self.version}"

    def built(self) -> bool:
        return all((self.bin_dir() / name).is_file() for name in self.binaries)


def go_env() -> dict[str, str]:
    root = paths.cache_dir() / "go"
    return {
        "GOMODCACHE": str(root / "mod"),
        "GOCACHE": str(root / "build"),
        "CGO_ENABLED": "0",
        # The helper go.mod is generated, so the go command may complete it and go.sum.
        "GOFLAGS": "-mod=mod -buildvcs=false",
    }


def download_dir(module: str) -> Path:
    """Where the module cache keeps a module's ``.info``/``.mod`` files (upper case escaped as ``!x``)."""
    escaped = "".join(f"!{c.lower()}" if c.isupper() else c for c in module)
    return Path(go_env()["GOMODCACHE"]) / "cache" / "download" / escaped / "@v"


def served_requirement(tool: GoTool, module: str) -> str | None:
    """The version of ``module`` that the tool's served go.mod requires (None before it is downloaded)."""
    mod = download_dir(tool.module) / f"{tool.version}.mod"
    if not mod.is_file():
        return None
    pattern = re.compile(rf"^\s*(?:require\s+)?{re.escape(module)}\s+(v\S+)")
    for line in mod.read_text().splitlines():
        match = pattern.match(line)
        if match:
            return match.group(1)
    return None


def build(server: str, tool: GoTool) -> Path:
    """The directory holding ``tool``'s binaries, built first if any is missing."""
    out = tool.bin_dir()
    if tool.built():
        return out
    go = process.require_tool(server, "go", GO_HINT)
    work = tool.work_dir()
    work.mkdir(parents=True, exist_ok=True)
    with _locked(work / ".lock"):
        # Another `up` may have finished the same build while we waited for the lock.
        if tool.built():
            return out
        _build_locked(server, tool, go, work)
    return out


@contextlib.contextmanager
def _locked(lock: Path) -> Iterator[None]:
    with lock.open("w") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        yield


def _build_locked(server: str, tool: GoTool, go: str, work: Path) -> None:
    log = work / "build.log"
    env = go_env()
    served = _served_gomod(server, go, tool, log)
    (work / "go.mod").write_text(helper_gomod(tool, served))
    process.run_logged(
        server,
        [go, "mod", "tidy"],
        what=f"resolving the Go modules of {tool.module}@{tool.version}",
        log=log,
        cwd=work,
        env=env,
        timeout=1800,
    )
    staging = work / "bin.tmp"
    shutil.rmtree(staging, ignore_errors=True)
    staging.mkdir()
    argv = [go, "build", "-trimpath", f"-ldflags={tool.ldflags()}", "-o", f"{staging}/"]
    if tool.tags:
        argv.insert(2, f"-tags={','.join(tool.tags)}")
    process.run_logged(
        server,
        [*argv, *tool.binaries.values()],
        what=f"building {', '.join(tool.binaries)} {tool.version} (a first build takes minutes)",
        log=log,
        cwd=work,
        env=env,
        timeout=3600,
    )
    out = tool.bin_dir()
    out.mkdir(parents=True, exist_ok=True)
    for name, package in tool.binaries.items():
        built = staging / exe_name(package)
        if not built.is_file():
            raise StackError(server, f"go build left no {built.name} for {package}", log)
        built.replace(out / name)
    shutil.rmtree(staging, ignore_errors=True)


def exe_name(package: str) -> str:
    """The file name ``go build -o dir/`` gives a main package (a trailing /vN is skipped)."""
    parts = package.rstrip("/").split("/")
    if len(parts) > 1 and re.fullmatch(r"v\d+", parts[-1]):
        return parts[-2]
    return parts[-1]


def _served_gomod(server: str, go: str, tool: GoTool, log: Path) -> str:
    """The go.mod the module proxy serves for the tool's module (downloaded into the cache if needed)."""
    mod = download_dir(tool.module) / f"{tool.version}.mod"
    if not mod.is_file():
        scratch = paths.cache_dir() / "gobuild"
        process.run_logged(
            server,
            [go, "mod", "download", f"{tool.module}@{tool.version}"],
            what=f"downloading {tool.module}@{tool.version}",
            log=log,
            cwd=scratch,
            env={**go_env(), "GOFLAGS": "-mod=mod"},
            timeout=1800,
        )
    if not mod.is_file():
        raise StackError(server, f"the Go module cache has no {mod} after downloading it", log)
    return mod.read_text()


def helper_gomod(tool: GoTool, served: str) -> str:
    """A go.mod that requires ``tool.module`` and lists its main packages as tools.

    The served go.mod's ``go`` and ``godebug`` lines are kept, so the binaries get the language
    version and GODEBUG defaults upstream builds them with. Every local ``./staging/src/k8s.io/<m>``
    replace (only k8s.io/kubernetes has them) becomes ``k8s.io/<m> v0.<minor>.<patch>``, the version
    those modules are published at for the release.
    """
    go_line, godebug = "go 1.24", ""
    replaces: list[str] = []
    staging_version = "v0." + tool.version.split(".", 1)[1]
    for raw in served.splitlines():
        line = raw.strip()
        if line.startswith("go "):
            go_line = line
        elif line.startswith("godebug "):
            godebug = line
        elif "=> ./staging/src/" in line:
            path = line.removeprefix("replace").strip().split()[0]
            replaces.append(f"\t{path} => {path} {staging_version}")
    lines = [f"module devstack.local/{tool.name}", "", go_line, ""]
    if godebug:
        lines += [godebug, ""]
    lines += [f"require {tool.module} {tool.version}", ""]
    lines += [f"tool {package}" for package in tool.binaries.values()]
    if replaces:
        lines += ["", "replace (", *replaces, ")"]
    return "\n".join(lines) + "\n"
