"""Apache Kafka, one combined broker+controller node in KRaft mode, from Maven Central jars.

Kafka 4.x is used: aiokafka (0.13+) negotiates protocol versions through ApiVersions, so the
protocol versions that Kafka 4.0 removed (KIP-896) are never asked for; the smoke test proves the
produce/consume path and the worker's consumer groups on it.
"""

from __future__ import annotations

import asyncio
import base64
import os
import uuid
from collections.abc import Mapping, Sequence
from pathlib import Path

from devstack import maven, paths, ports, process, tls
from devstack.server import Server

KAFKA_VERSION = "4.1.1"
LOG4J_VERSION = "2.25.3"

_ARTIFACTS = [
    f"org.apache.kafka:kafka_2.13:{KAFKA_VERSION}",
    # The Maven artifact carries no logging backend, and pins slf4j-api 1.7: lift the API to 2.x
    # so that the log4j2 binding for slf4j 2 is found instead of slf4j's silent no-op logger.
    "org.slf4j:slf4j-api:2.0.17",
    f"org.apache.logging.log4j:log4j-core:{LOG4J_VERSION}",
    f"org.apache.logging.log4j:log4j-slf4j2-impl:{LOG4J_VERSION}",
]

_LOG4J = """\
status = warn
appender.out.type = Console
appender.out.name = out
appender.out.layout.type = PatternLayout
appender.out.layout.pattern = [%d] %p %m (%c)%n
rootLogger.level = INFO
rootLogger.appenderRef.out.ref = out
logger.kafka.name = kafka
logger.kafka.level = INFO
logger.state.name = state.change.logger
logger.state.level = WARN
"""


class Kafka(Server):
    name = "kafka"
    ready_timeout = 90.0

    def ports(self) -> Sequence[int]:
        return (
            ports.port("KAFKA"),
            ports.port("KAFKA_CONTROLLER"),
            ports.port("KAFKA_SASL_SSL"),
            ports.port("KAFKA_SSL"),
        )

    @property
    def bootstrap(self) -> str:
        return f"127.0.0.1:{ports.port('KAFKA')}"

    def provision(self) -> None:
        self._classpath()
        tls.ensure(self.name)

    def _classpath(self) -> list[Path]:
        return maven.classpath(self.name, _ARTIFACTS)

    def _java(self) -> str:
        return str(maven.java_home(self.name, 17) / "bin" / "java")

    def _config(self) -> Path:
        data = paths.data_dir(self.name)
        port, controller, sasl_ssl, ssl_port = self.ports()
        data.mkdir(parents=True, exist_ok=True)
        # Kafka reads PEM key stores: the private key and the certificate in one file.
        keystore = data / "server-keystore.pem"
        keystore.write_text(tls.server_key().read_text() + tls.server_cert().read_text())
        keystore.chmod(0o600)
        password = tls.credentials()["kafka_password"]
        user = tls.credentials()["kafka_user"]
        props = {
            "process.roles": "broker,controller",
            "node.id": "1",
            "controller.quorum.voters": f"1@127.0.0.1:{controller}",
            "listeners": (
                f"PLAINTEXT://127.0.0.1:{port},CONTROLLER://127.0.0.1:{controller},"
                f"SASL_SSL://127.0.0.1:{sasl_ssl},SSL://127.0.0.1:{ssl_port}"
            ),
            "advertised.listeners": (
                f"PLAINTEXT://127.0.0.1:{port},SASL_SSL://127.0.0.1:{sasl_ssl},SSL://127.0.0.1:{ssl_port}"
            ),
            "controller.listener.names": "CONTROLLER",
            "inter.broker.listener.name": "PLAINTEXT",
            "listener.security.protocol.map": ("PLAINTEXT:PLAINTEXT,CONTROLLER:PLAINTEXT,SASL_SSL:SASL_SSL,SSL:SSL"),
            # TLS for both secured listeners; SSL demands a client certificate, SASL_SSL a password.
            "ssl.keystore.type": "PEM",
            "ssl.keystore.location": str(keystore),
            "ssl.truststore.type": "PEM",
            "ssl.truststore.location": str(tls.ca_cert()),
            "listener.name.ssl.ssl.client.auth": "required",
            "listener.name.sasl_ssl.ssl.client.auth": "none",
            "listener.name.sasl_ssl.sasl.enabled.mechanisms": "PLAIN,SCRAM-SHA-512",
            "listener.name.sasl_ssl.plain.sasl.jaas.config": (
                f'org.apache.kafka.common.security.plain.PlainLoginModule required user_{user}="{password}";'
            ),
            "listener.name.sasl_ssl.scram-sha-512.sasl.jaas.config": (
                "org.apache.kafka.common.security.scram.ScramLoginModule required;"
            ),
            "log.dirs": str(data / "logs"),
            "num.partitions": "1",
            # One node: internal topics with more replicas never become available and
            # consumer groups hang waiting for them.
            "offsets.topic.replication.factor": "1",
            "transaction.state.log.replication.factor": "1",
            "transaction.state.log.min.isr": "1",
            "share.coordinator.state.topic.replication.factor": "1",
            "share.coordinator.state.topic.min.isr": "1",
            "min.insync.replicas": "1",
            "default.replication.factor": "1",
            # Tests create and drop many short-lived consumer groups; don't wait 3 s for each.
            "group.initial.rebalance.delay.ms": "0",
            "auto.create.topics.enable": "true",
            "delete.topic.enable": "true",
        }
        conf = data / "server.properties"
        fd = os.open(conf, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)  # it holds a password
        os.close(fd)
        conf.write_text("".join(f"{k}={v}\n" for k, v in props.items()))
        (data / "log4j2.properties").write_text(_LOG4J)
        return conf

    def _base_cmd(self, main: str) -> list[str]:
        data = paths.data_dir(self.name)
        return [
            self._java(),
            "-Xms256m",
            "-Xmx768m",
            f"-Dlog4j2.configurationFile={data / 'log4j2.properties'}",
            "-cp",
            os.pathsep.join(map(str, self._classpath())),
            main,
        ]

    def start(self) -> None:
        conf = self._config()
        data = paths.data_dir(self.name)
        if not (data / "logs" / "meta.properties").exists():
            cluster_id = _kraft_cluster_id()
            process.run_logged(
                self.name,
                [*self._base_cmd("kafka.tools.StorageTool"), "format", "-t", cluster_id, "-c", str(conf)],
                what="formatting KRaft storage",
                log=paths.log_file(self.name),
                timeout=120,
            )
        process.spawn(self.name, [*self._base_cmd("kafka.Kafka"), str(conf)])

    def probe(self) -> bool:
        # A metadata round trip proves the broker *and* the controller quorum answer.
        return process.port_in_use(ports.port("KAFKA")) and asyncio.run(_cluster_ok(self.bootstrap))

    def after_ready(self) -> None:
        # SCRAM credentials live in the cluster metadata, not in a file: add (or reset) ours.
        creds = tls.credentials()
        process.run_logged(
            self.name,
            [
                *self._base_cmd("kafka.admin.ConfigCommand"),
                "--bootstrap-server",
                self.bootstrap,
                "--alter",
                "--add-config",
                f"SCRAM-SHA-512=[iterations=4096,password={creds['kafka_password']}]",
                "--entity-type",
                "users",
                "--entity-name",
                creds["kafka_user"],
            ],
            what="adding the SCRAM-SHA-512 user",
            log=paths.log_file(self.name + "-admin"),
            timeout=120,
        )

    def env(self) -> Mapping[str, str]:
        _, _, sasl_ssl, ssl_port = self.ports()
        return {
            "DEVSTACK_KAFKA_BOOTSTRAP": self.bootstrap,
            "DEVSTACK_KAFKA_SASL_SSL_BOOTSTRAP": f"127.0.0.1:{sasl_ssl}",
            "DEVSTACK_KAFKA_SSL_BOOTSTRAP": f"127.0.0.1:{ssl_port}",
            **tls.client_env(),
        }


async def _cluster_ok(bootstrap: str) -> bool:
    from aiokafka.admin import AIOKafkaAdminClient

    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap, request_timeout_ms=3000)
    try:
        await admin.start()
        cluster = await admin.describe_cluster()
        return bool(cluster.get("brokers")) and cluster.get("controller_id", -1) >= 0
    finally:
        await admin.close()


def _kraft_cluster_id() -> str:
    # StorageTool's `random-uuid`: 16 random bytes, URL-safe base64 without padding.
    return base64.urlsafe_b64encode(uuid.uuid4().bytes).decode().rstrip("=")


SERVERS: list[Server] = [Kafka()]
