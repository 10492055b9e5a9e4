"""Elasticsearch and OpenSearch, one real single-node cluster each, started from Maven Central jars.

Neither engine publishes a runnable distribution to a package registry, but both publish the server
jar and the Netty HTTP transport (Elasticsearch for its test framework, OpenSearch as client plugins).
A small Java launcher per engine (``devstack/java/<engine>``) builds a ``Node`` with those classes as
plugins, the way the engines' own single-node test harnesses do. Bootstrap checks, the security
manager and Elasticsearch's entitlement agent belong to the distributions' launchers and do not run.

Elasticsearch without its distribution's modules still serves index templates, ``_bulk``, search,
aggregations, aliases and cluster health, which is what the event sink needs. It lacks painless,
``_delete_by_query``/``_reindex``/``_update_by_query``, ingest pipelines, data streams, ILM and the
analysis-common analyzers. ``GET /`` (rest-root) is stood in for by a small plugin of the launcher, so
the client's ``info()`` and ``ping()`` work. OpenSearch publishes analysis-common, mapper-extras,
painless and reindex as jars, so its node has them.

``DEVSTACK_ELASTICSEARCH_HEAP`` / ``DEVSTACK_OPENSEARCH_HEAP`` (default 512m) size the heaps.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from pathlib import Path

from devstack import maven, paths, ports, process
from devstack.errors import StackError
from devstack.server import Server

# Elasticsearch's embedding API (NodeConstruction, PluginsService, PluginDescriptor) changes between
# minor versions, so exactly one release is pinned. 9.5.3 is the newest 9.x on Central with a matching
# `transport-netty4` (that jar skips 9.2.3-9.3.x, and no 9.4.x is on Central at all), and it matches the
# major and minor of the Python client (elasticsearch 9.5.x).
ELASTICSEARCH_VERSION = "9.5.3"
# The last 2.x runs on Java 17 (3.x needs 21); 2.19.7 lacks the plugin jars on Central.
OPENSEARCH_VERSION = "2.19.6"
# OpenSearch's pom brings log4j-api only; the server logs through log4j-core classes directly.
OPENSEARCH_LOG4J_VERSION = "2.25.4"

_HEAP_DEFAULT = "512m"
_CLUSTER_NAME = "devstack"

# System properties the distributions' own jvm.options set, for the same reasons: Netty must not use
# sun.misc.Unsafe (deprecated for removal, warns on Java 24+) or its own recycler, and log4j must not
# register a shutdown hook that would stop logging before the node has closed.
_COMMON_JVM = [
    "-XX:+UseSerialGC",  # a small heap on 2 shared cores: no G1 concurrent threads needed
    "-XX:-UsePerfData",
    "-Dio.netty.noUnsafe=true",
    "-Dio.netty.noKeySetOptimization=true",
    "-Dio.netty.recycler.maxCapacityPerThread=0",
    "-Dlog4j.shutdownHookEnabled=false",
    "-Dlog4j2.disable.jmx=true",
    "-Dlog4j2.formatMsgNoLookups=true",
    "-Djava.locale.providers=CLDR",
    "-Dfile.encoding=UTF-8",
]


class _SearchNode(Server):
    """A single-node cluster run by a launcher class compiled against the engine's jars."""

    ready_timeout = 180.0
    version: str
    java_minimum: int
    port_name: str
    transport_port_name: str
    launcher: str
    artifacts: Sequence[str]

    # -- what subclasses add -------------------------------------------------------------------------

    def extra_jvm(self) -> list[str]:
        return []

    def extra_provision(self) -> None:
        return None

    # -- Server ----------------------------------------------------------------------------------------

    def ports(self) -> Sequence[int]:
        return (ports.port(self.port_name), ports.port(self.transport_port_name))

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{ports.port(self.port_name)}"

    def provision(self) -> None:
        self._compiled()
        self.extra_provision()

    def start(self) -> None:
        classes, cp = self._compiled()
        home = paths.data_dir(self.name)
        # Data is kept per version: a node refuses data written by a newer release, and a changed pin
        # should not turn into a start-up failure in a developer's old state directory.
        data = home / f"data-{self.version}"
        data.mkdir(parents=True, exist_ok=True)
        http, transport = self.ports()
        settings = {
            "cluster.name": _CLUSTER_NAME,
            "node.name": _CLUSTER_NAME,
            "path.home": str(home),
            "path.data": str(data),
            "path.logs": str(home / "logs"),
            "network.host": "127.0.0.1",
            "http.port": str(http),
            "transport.port": str(transport),
            "discovery.type": "single-node",
            # Thread pools sized for one core: the machine is shared with Kafka and Kubernetes.
            "node.processors": "1",
            # The real-memory breaker trips on a small heap under bursty bulk loads.
            "indices.breaker.total.use_real_memory": "false",
            # A crowded developer disk must not turn indices read-only or leave shards unassigned.
            "cluster.routing.allocation.disk.threshold_enabled": "false",
        }
        heap = os.environ.get(f"DEVSTACK_{self.port_name}_HEAP", _HEAP_DEFAULT)
        log4j = paths.source_dir() / "java" / self.name / "log4j2.properties"
        argv = [
            str(self._java_home() / "bin" / "java"),
            f"-Xms{heap}",
            f"-Xmx{heap}",
            *_COMMON_JVM,
            f"-Djava.io.tmpdir={_tmp_dir(home)}",
            f"-Dlog4j2.configurationFile={log4j}",
            *self.extra_jvm(),
            "-cp",
            os.pathsep.join([str(classes), *map(str, cp)]),
            self.launcher,
            *(f"{k}={v}" for k, v in settings.items()),
        ]
        process.spawn(self.name, argv, cwd=home)

    def probe(self) -> bool:
        # Health with a wait answers 408 until the cluster can take writes (`GET /` answers earlier).
        # The cluster name tells ours from a stranger's node on the port.
        return process.http_ok(
            f"{self.url}/_cluster/health?wait_for_status=yellow&timeout=1s",
            timeout=5.0,
            expect=f'"cluster_name":"{_CLUSTER_NAME}"'.encode(),
        )

    def describe(self) -> str:
        return f"{self.url} (transport 127.0.0.1:{ports.port(self.transport_port_name)})"

    # -- internals -----------------------------------------------------------------------------------

    def _java_home(self) -> Path:
        return maven.java_home(self.name, self.java_minimum)

    def _compiled(self) -> tuple[Path, list[Path]]:
        cp = maven.classpath(self.name, list(self.artifacts))
        sources = sorted((paths.source_dir() / "java" / self.name).rglob("*.java"))
        if not sources:
            raise StackError(self.name, f"no launcher sources under {paths.source_dir() / 'java' / self.name}")
        classes = maven.compile_java(self.name, sources, cp, str(self._java_home() / "bin" / "javac"))
        return classes, cp


class Elasticsearch(_SearchNode):
    name = "elasticsearch"
    version = ELASTICSEARCH_VERSION
    java_minimum = 21
    port_name = "ELASTICSEARCH"
    transport_port_name = "ELASTICSEARCH_TRANSPORT"
    launcher = "org.elasticsearch.node.DevstackElasticsearch"
    artifacts = (
        f"org.elasticsearch:elasticsearch:{ELASTICSEARCH_VERSION}",
        f"org.elasticsearch.plugin:transport-netty4:{ELASTICSEARCH_VERSION}",
    )

    def extra_jvm(self) -> list[str]:
        return [
            # Elasticsearch reaches libc and zstd through the foreign function API.
            "--enable-native-access=ALL-UNNAMED",
            # Lucene and Elasticsearch vectorise scoring with it; without it they log a warning per use.
            "--add-modules=jdk.incubator.vector",
            f"-Des.nativelibs.path={_native_dir()}",
            # libvec (SIMD vector scoring) is ES's own native library, shipped only in the distribution.
            "-Dorg.elasticsearch.nativeaccess.enableVectorLibrary=false",
        ]

    def extra_provision(self) -> None:
        _link_native_libraries()

    def env(self) -> Mapping[str, str]:
        return {"DEVSTACK_ELASTICSEARCH_URL": self.url}


class OpenSearch(_SearchNode):
    name = "opensearch"
    version = OPENSEARCH_VERSION
    java_minimum = 17
    port_name = "OPENSEARCH"
    transport_port_name = "OPENSEARCH_TRANSPORT"
    launcher = "devstack.opensearch.DevstackOpenSearch"
    artifacts = (
        f"org.opensearch:opensearch:{OPENSEARCH_VERSION}",
        f"org.opensearch.plugin:transport-netty4-client:{OPENSEARCH_VERSION}",
        f"org.opensearch.plugin:analysis-common:{OPENSEARCH_VERSION}",
        f"org.opensearch.plugin:mapper-extras-client:{OPENSEARCH_VERSION}",
        f"org.opensearch.plugin:lang-painless:{OPENSEARCH_VERSION}",
        f"org.opensearch.plugin:reindex-client:{OPENSEARCH_VERSION}",
        f"org.apache.logging.log4j:log4j-core:{OPENSEARCH_LOG4J_VERSION}",
    )

    def env(self) -> Mapping[str, str]:
        return {"DEVSTACK_OPENSEARCH_URL": self.url}


def _tmp_dir(home: Path) -> Path:
    # Kept beside the data so that `down --purge` removes what the node unpacked there.
    tmp = home / "tmp"
    tmp.mkdir(parents=True, exist_ok=True)
    return tmp


def _native_dir() -> Path:
    return paths.cache_dir() / "elasticsearch-native"


def _link_native_libraries() -> None:
    """Give Elasticsearch's native access the system zstd it would find in the distribution's lib/.

    The distribution ships ``libzstd.so`` in ``lib/platform/linux-x64``; Central does not. With a link to
    the system's copy Elasticsearch enables its native layer; without one it logs a stack trace and runs
    with native methods disabled (still fine for tests), so a missing libzstd is not an error.
    """
    target = _native_dir()
    link = target / "libzstd.so"
    if link.exists():
        return
    found = next(
        (
            Path(p)
            for p in (
                "/usr/lib/x86_64-linux-gnu/libzstd.so.1",
                "/usr/lib/aarch64-linux-gnu/libzstd.so.1",
                "/usr/lib64/libzstd.so.1",
                "/usr/lib/libzstd.so.1",
            )
            if Path(p).exists()
        ),
        None,
    )
    target.mkdir(parents=True, exist_ok=True)
    if found is not None:
        link.unlink(missing_ok=True)  # a dangling link from an older system copy
        link.symlink_to(found)


SERVERS: list[Server] = [Elasticsearch(), OpenSearch()]
