"""Fetch jars from Maven Central into the cache and compile the stack's small Java launchers."""

from __future__ import annotations

import hashlib
import os
from collections.abc import Sequence
from pathlib import Path
from xml.sax.saxutils import escape

from devstack import paths, process
from devstack.errors import StackError

_POM = """<?xml version="1.0" encoding="UTF-8"?>
<project xmlns="http://maven.apache.org/POM/4.0.0">
  <modelVersion>4.0.0</modelVersion>
  <groupId>local.devstack</groupId>
  <artifactId>{name}</artifactId>
  <version>0</version>
  <packaging>pom</packaging>
  <dependencies>
{deps}
  </dependencies>
</project>
"""


def m2_repo() -> Path:
    return paths.cache_dir() / "m2"


def classpath(server: str, artifacts: Sequence[str]) -> list[Path]:
    """Resolve ``group:artifact:version`` coordinates (with their runtime dependencies) to jars.

    The resolved class path is remembered per coordinate set, so a warm run never calls Maven.
    """
    key = hashlib.sha256("\n".join(sorted(artifacts)).encode()).hexdigest()[:16]
    work = paths.cache_dir() / "maven" / f"{server}-{key}"
    cp_file = work / "classpath.txt"
    if cp_file.exists():
        jars = [Path(p) for p in cp_file.read_text().strip().split(os.pathsep) if p]
        if jars and all(j.exists() for j in jars):
            return jars
    mvn = process.require_tool(server, "mvn", "install Maven (apt-get install maven)")
    work.mkdir(parents=True, exist_ok=True)
    deps = []
    for coord in artifacts:
        group, artifact, version = coord.split(":")
        deps.append(
            "    <dependency>"
            f"<groupId>{escape(group)}</groupId><artifactId>{escape(artifact)}</artifactId>"
            f"<version>{escape(version)}</version></dependency>"
        )
    (work / "pom.xml").write_text(_POM.format(name=server, deps="\n".join(deps)))
    tmp = work / "classpath.tmp"
    process.run_logged(
        server,
        [
            mvn,
            "-B",
            "-q",
            f"-Dmaven.repo.local={m2_repo()}",
            "dependency:build-classpath",
            "-Dmdep.includeScope=runtime",
            f"-Dmdep.outputFile={tmp}",
        ],
        what=f"resolving {len(artifacts)} artifact(s) from Maven Central",
        log=work / "maven.log",
        cwd=work,
        timeout=1800,
    )
    tmp.replace(cp_file)
    return [Path(p) for p in cp_file.read_text().strip().split(os.pathsep) if p]


def compile_java(server: str, sources: Sequence[Path], cp: Sequence[Path], javac: str) -> Path:
    """Compile launcher sources against ``cp``; the output is keyed by the sources' content."""
    digest = hashlib.sha256()
    for src in sorted(sources):
        digest.update(src.read_bytes())
    digest.update(os.pathsep.join(map(str, cp)).encode())
    # Classes from a newer javac do not load on an older JVM: a change of JDK must recompile.
    digest.update(str(Path(javac).resolve()).encode())
    out = paths.cache_dir() / "classes" / f"{server}-{digest.hexdigest()[:16]}"
    if (out / ".done").exists():
        return out
    out.mkdir(parents=True, exist_ok=True)
    process.run_logged(
        server,
        [javac, "-nowarn", "-d", str(out), "-cp", os.pathsep.join(map(str, cp)), *map(str, sources)],
        what="compiling the Java launcher",
        log=out / "javac.log",
        timeout=600,
    )
    (out / ".done").touch()
    return out


def java_home(server: str, minimum: int) -> Path:
    """The oldest JDK that is at least ``minimum`` (engines are tested on the oldest they support).

    ``$DEVSTACK_JAVA_HOME_<minimum>`` overrides the choice; otherwise ``$JAVA_HOME`` and
    /usr/lib/jvm are searched.
    """
    override = os.environ.get(f"DEVSTACK_JAVA_HOME_{minimum}")
    candidates = [Path(override)] if override else []
    if not override:
        if os.environ.get("JAVA_HOME"):
            candidates.append(Path(os.environ["JAVA_HOME"]))
        jvm = Path("/usr/lib/jvm")
        if jvm.is_dir():
            candidates.extend(sorted(jvm.iterdir()))
    fitting = []
    for home in candidates:
        version = _java_major(home)
        if version is not None and version >= minimum and (home / "bin" / "javac").exists():
            fitting.append((version, str(home)))
    if not fitting:
        raise StackError(
            server,
            f"needs a JDK {minimum} or newer with javac; none found in $JAVA_HOME or /usr/lib/jvm "
            "(apt-get install openjdk-17-jdk-headless; Java 21+ for Elasticsearch 9)",
        )
    return Path(min(fitting)[1])


def _java_major(home: Path) -> int | None:
    release = home / "release"
    if not release.exists():
        return None
    for line in release.read_text().splitlines():
        if line.startswith("JAVA_VERSION="):
            value = line.split("=", 1)[1].strip('"')
            head = value.split(".")[0]
            if head == "1":
                head = value.split(".")[1]
            return int(head) if head.isdigit() else None
    return None
