"""The worker's settings: one typed object read from the environment and validated at start-up.

Every variable is ``K8SEV_<NAME>``; ``KUBECONFIG`` is honoured too. A bad value never surfaces as a
stack trace deep in a client: :meth:`Settings.from_env` collects *every* problem and raises one
:class:`SettingsError` that names each variable, its value and what was expected.
"""

from __future__ import annotations

import os
import re
import socket
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any, Literal
from urllib.parse import urlsplit

PREFIX = "K8SEV_"
SERVICE_ACCOUNT_NAMESPACE = Path("/var/run/secrets/kubernetes.io/serviceaccount/namespace")

Engine = Literal["elasticsearch", "opensearch"]

_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(ms|s|m|h|d)?\s*$")
_UNITS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0, None: 1.0}
# Kafka's legal topic characters; 249 is its length limit.
_TOPIC = re.compile(r"^[A-Za-z0-9._-]{1,249}$")
# Elasticsearch index names: lowercase, no \ / * ? " < > | space , # :, not starting with - _ +.
_INDEX_PREFIX = re.compile(r"^[a-z0-9][a-z0-9._-]{0,200}$")
_LABEL = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,62}$")


class SettingsError(ValueError):
    """One or more settings are invalid; ``problems`` lists each as ``VAR=value: why``."""

    def __init__(self, problems: list[str]) -> None:
        self.problems = problems
        super().__init__("invalid configuration:\n  " + "\n  ".join(problems))


def parse_duration(text: str) -> float:
    """``"90"``, ``"90s"``, ``"1.5m"``, ``"2h"``, ``"7d"``, ``"250ms"`` -> seconds (float, >= 0)."""
    match = _DURATION.match(text)
    if not match:
        raise ValueError(f"{text!r} is not a duration (examples: 30s, 5m, 2h, 7d)")
    return float(match.group(1)) * _UNITS[match.group(2)]


def parse_list(text: str) -> tuple[str, ...]:
    """A comma-separated list; blanks and surrounding spaces are dropped."""
    return tuple(item.strip() for item in text.split(",") if item.strip())


def parse_bool(text: str) -> bool:
    lowered = text.strip().lower()
    if lowered in ("1", "true", "yes", "on"):
        return True
    if lowered in ("0", "false", "no", "off"):
        return False
    raise ValueError(f"{text!r} is not a boolean (true/false)")


def _positive_int(text: str) -> int:
    value = int(text)
    if value <= 0:
        raise ValueError(f"{text!r} must be a positive integer")
    return value


def _non_negative_int(text: str) -> int:
    value = int(text)
    if value < 0:
        raise ValueError(f"{text!r} must be zero or a positive integer")
    return value


def _positive_duration(text: str) -> float:
    value = parse_duration(text)
    if value <= 0:
        raise ValueError(f"{text!r} must be longer than zero")
    return value


def _brokers(text: str) -> tuple[str, ...]:
    urls = parse_list(text)
    if not urls:
        raise ValueError("at least one broker is needed (kafka://host:9092)")
    out = []
    for url in urls:
        if "://" not in url:
            url = f"kafka://{url}"
        parts = urlsplit(url)
        if parts.scheme not in ("kafka", "aiokafka") or not parts.hostname or parts.port is None:
            raise ValueError(f"{url!r} is not host:port or kafka://host:port")
        out.append(f"kafka://{parts.hostname}:{parts.port}")
    return tuple(out)


def _http_urls(text: str) -> tuple[str, ...]:
    urls = parse_list(text)
    if not urls:
        raise ValueError("at least one URL is needed (http://host:9200)")
    for url in urls:
        parts = urlsplit(url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError(f"{url!r} is not an http(s):// URL")
        if parts.username or parts.password:
            raise ValueError(f"{_redact(url)!r}: put credentials in K8SEV_ES_USERNAME/_PASSWORD, not the URL")
    return urls


def _redact(url: str) -> str:
    parts = urlsplit(url)
    if parts.password:
        return url.replace(f":{parts.password}@", ":***@")
    return url


def _redact_all(text: str) -> str:
    """``text`` with the password of every ``scheme://user:password@`` in it masked."""
    return ",".join(_redact(part) for part in text.split(","))


def _topic(text: str) -> str:
    if not _TOPIC.match(text) or text in (".", ".."):
        raise ValueError(f"{text!r} is not a legal Kafka topic name ([A-Za-z0-9._-], at most 249)")
    return text


def _index_prefix(text: str) -> str:
    if not _INDEX_PREFIX.match(text):
        raise ValueError(f"{text!r} is not a legal index prefix (lowercase a-z 0-9 . _ -, not starting with . _ -)")
    return text


def _label(text: str) -> str:
    if not _LABEL.match(text):
        raise ValueError(f"{text!r} must be 1-63 characters of A-Z a-z 0-9 . _ -")
    return text


def _engine(text: str) -> str:
    if text not in ("elasticsearch", "opensearch"):
        raise ValueError(f"{text!r} is not one of: elasticsearch, opensearch")
    return text


def _kafka_protocol(text: str) -> str:
    if text not in ("PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL"):
        raise ValueError(f"{text!r} is not one of PLAINTEXT, SSL, SASL_PLAINTEXT, SASL_SSL")
    return text


def _sasl_mechanism(text: str) -> str:
    if text not in ("PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512"):
        raise ValueError(f"{text!r} is not one of PLAIN, SCRAM-SHA-256, SCRAM-SHA-512")
    return text


def _port(text: str) -> int:
    value = int(text)
    if not 0 < value < 65536:
        raise ValueError(f"{text!r} is not a TCP port")
    return value


def _existing_file(text: str) -> Path:
    path = Path(text).expanduser()
    if not path.is_file():
        raise ValueError(f"{text!r}: no such file")
    return path


def _optional_file(text: str) -> Path | None:
    return _existing_file(text) if text else None


def _event_types(text: str) -> tuple[str, ...]:
    types = parse_list(text)
    unknown = [t for t in types if t not in ("Normal", "Warning")]
    if unknown:
        raise ValueError(f"unknown event type(s) {', '.join(unknown)} (Kubernetes has Normal and Warning)")
    return types


def _setting(env: str, default: str, parse: Callable[[str], Any], doc: str, *, secret: bool = False) -> Any:
    return field(default=None, metadata={"env": env, "default": default, "parse": parse, "doc": doc, "secret": secret})


@dataclass(frozen=True)
class Settings:
    """Everything the worker is told from outside. See ``docs/configuration.md``."""

    app_id: str = _setting("APP_ID", "k8s-event-streams", _label, "Faust app id: consumer group and table names")
    brokers: tuple[str, ...] = _setting("BROKER", "kafka://localhost:9092", _brokers, "Kafka bootstrap servers")
    raw_topic: str = _setting("TOPIC", "k8s-event", _topic, "raw topic: the Event JSON, keyed by uid")
    clean_topic: str = _setting("CLEAN_TOPIC", "k8s-event-clean", _topic, "deduplicated events")
    dead_letter_topic: str = _setting("DEAD_LETTER_TOPIC", "k8s-event-dead-letter", _topic, "rejected records")
    topic_partitions: int = _setting("TOPIC_PARTITIONS", "6", _positive_int, "partitions of the topics we create")
    topic_replicas: int = _setting("TOPIC_REPLICAS", "1", _positive_int, "replication factor of our topics")
    kafka_security_protocol: str = _setting(
        "KAFKA_SECURITY_PROTOCOL", "PLAINTEXT", _kafka_protocol, "PLAINTEXT, SSL, SASL_PLAINTEXT or SASL_SSL"
    )
    kafka_sasl_mechanism: str = _setting(
        "KAFKA_SASL_MECHANISM", "SCRAM-SHA-512", _sasl_mechanism, "PLAIN, SCRAM-SHA-256 or SCRAM-SHA-512"
    )
    kafka_username: str = _setting("KAFKA_USERNAME", "", str, "SASL user")
    kafka_password: str = _setting("KAFKA_PASSWORD", "", str, "SASL password", secret=True)
    kafka_password_file: Path | None = _setting(
        "KAFKA_PASSWORD_FILE", "", _optional_file, "file holding the SASL password (a mounted Secret)"
    )
    kafka_ca_file: Path | None = _setting("KAFKA_CA_FILE", "", _optional_file, "CA bundle for Kafka TLS")
    kafka_cert_file: Path | None = _setting("KAFKA_CERT_FILE", "", _optional_file, "client certificate for Kafka TLS")
    kafka_key_file: Path | None = _setting("KAFKA_KEY_FILE", "", _optional_file, "its private key")
    session_timeout: float = _setting(
        "SESSION_TIMEOUT", "30s", _positive_duration, "a worker silent this long leaves the consumer group"
    )

    kubeconfig: Path | None = _setting(
        "KUBECONFIG", "", _optional_file, "kubeconfig file; empty: $KUBECONFIG, in-cluster, ~/.kube/config"
    )
    cluster: str = _setting("CLUSTER", "default", _label, "cluster name written on every document")
    namespaces: tuple[str, ...] = _setting("NAMESPACES", "", parse_list, "namespaces to watch; empty: all")
    event_types: tuple[str, ...] = _setting("EVENT_TYPES", "", _event_types, "keep only these types; empty: all")
    include_reasons: tuple[str, ...] = _setting("INCLUDE_REASONS", "", parse_list, "keep only these reasons")
    exclude_reasons: tuple[str, ...] = _setting("EXCLUDE_REASONS", "", parse_list, "drop these reasons")
    ingest: bool = _setting("INGEST", "true", parse_bool, "run the Kubernetes watch in this worker")
    list_page_size: int = _setting("LIST_PAGE_SIZE", "500", _positive_int, "events per LIST page")
    watch_timeout: float = _setting(
        "WATCH_TIMEOUT", "1m", _positive_duration, "server-side WATCH timeout: the watch is re-opened this often"
    )
    watch_idle_timeout: float = _setting(
        "WATCH_IDLE_TIMEOUT", "90s", _positive_duration, "re-open a WATCH silent this long (> WATCH_TIMEOUT)"
    )
    ingest_queue: int = _setting("INGEST_QUEUE", "1000", _positive_int, "events buffered between watch and Kafka")
    event_ttl: float = _setting(
        "EVENT_TTL", "1h", _positive_duration, "the API server's --event-ttl: longer pauses may lose events"
    )
    lease_namespace: str = _setting(
        "LEASE_NAMESPACE", "", str, "namespace of the ingest Lease; empty: the pod's own, else default"
    )
    lease_name: str = _setting("LEASE_NAME", "", str, "name of the ingest Lease; empty: <app id>-ingest")
    lease_duration: float = _setting(
        "LEASE_DURATION", "15s", _positive_duration, "a leader silent this long is replaced"
    )
    lease_renew_deadline: float = _setting(
        "LEASE_RENEW_DEADLINE", "10s", _positive_duration, "a leader that cannot renew this long stops watching"
    )
    lease_retry_period: float = _setting(
        "LEASE_RETRY_PERIOD", "2s", _positive_duration, "how often the lease (and the checkpoint) is written"
    )
    identity: str = _setting("IDENTITY", "", str, "this worker's name in the Lease; empty: hostname and a random id")

    dedup_horizon: float = _setting("DEDUP_HORIZON", "2h", _positive_duration, "how long dedup remembers a uid")

    search_engine: Engine = _setting("SEARCH_ENGINE", "elasticsearch", _engine, "elasticsearch or opensearch")
    es_urls: tuple[str, ...] = _setting("ES_URL", "http://localhost:9200", _http_urls, "search engine URL(s)")
    es_username: str = _setting("ES_USERNAME", "", str, "basic-auth user")
    es_password: str = _setting("ES_PASSWORD", "", str, "basic-auth password", secret=True)
    es_api_key: str = _setting("ES_API_KEY", "", str, "API key (Elasticsearch)", secret=True)
    es_password_file: Path | None = _setting("ES_PASSWORD_FILE", "", _optional_file, "file holding the password")
    es_api_key_file: Path | None = _setting("ES_API_KEY_FILE", "", _optional_file, "file holding the API key")
    es_ca_certs: Path | None = _setting("ES_CA_CERTS", "", _optional_file, "CA bundle for https")
    es_client_cert: Path | None = _setting("ES_CLIENT_CERT", "", _optional_file, "client certificate for https")
    es_client_key: Path | None = _setting("ES_CLIENT_KEY", "", _optional_file, "its private key")
    index_prefix: str = _setting("INDEX_PREFIX", "k8s-event", _index_prefix, "daily indices <prefix>-YYYY.MM.dd")
    index_replicas: int = _setting("INDEX_REPLICAS", "1", _non_negative_int, "replicas of the daily indices")
    index_refresh_interval: str = _setting("INDEX_REFRESH_INTERVAL", "1s", str, "refresh interval of the indices")
    bulk_size: int = _setting("BULK_SIZE", "500", _positive_int, "documents per bulk request")
    bulk_within: float = _setting("BULK_WITHIN", "1s", _positive_duration, "longest wait to fill a bulk request")
    retention_days: int = _setting("RETENTION_DAYS", "30", _non_negative_int, "delete daily indices older; 0: never")
    retention_interval: float = _setting("RETENTION_INTERVAL", "1h", _positive_duration, "how often retention runs")

    web_port: int = _setting("WEB_PORT", "6066", _port, "Faust web server: views, /healthz, /readyz, /metrics")
    web_bind: str = _setting("WEB_BIND", "0.0.0.0", str, "address the web server listens on")  # noqa: S104
    web_host: str = _setting(
        "WEB_HOST", "", str, "how other workers reach this one's web server (pod IP); empty: the host name"
    )
    data_dir: Path = _setting("DATA_DIR", "", lambda s: Path(s) if s else Path("."), "Faust table state")

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> Settings:
        env = os.environ if environ is None else environ
        values: dict[str, Any] = {}
        problems: list[str] = []
        for f in fields(cls):
            var = PREFIX + f.metadata["env"]
            raw = env.get(var)
            if raw is None and f.name == "kubeconfig":
                raw = env.get("KUBECONFIG", "").split(os.pathsep)[0]
            text = f.metadata["default"] if raw is None else raw
            try:
                values[f.name] = f.metadata["parse"](text)
            except ValueError as exc:
                shown = "***" if f.metadata["secret"] else repr(_redact_all(text))
                problems.append(f"{var}={shown}: {exc}")
        if not problems:
            problems.extend(_read_secret_files(values))
        if not problems:
            problems.extend(_cross_checks(values))
        if problems:
            raise SettingsError(problems)
        if not values["lease_name"]:
            values["lease_name"] = f"{values['app_id']}-ingest"
        if not values["lease_namespace"]:
            values["lease_namespace"] = _own_namespace()
        if not values["web_host"]:
            values["web_host"] = socket.gethostname()
        if not values["identity"]:
            values["identity"] = f"{socket.gethostname()}-{uuid.uuid4().hex[:8]}"
        if not env.get(PREFIX + "DATA_DIR"):
            values["data_dir"] = Path(env.get("XDG_STATE_HOME") or Path.home() / ".local" / "state") / (
                f"k8s-event-streams/{values['app_id']}"
            )
        return cls(**values)

    def describe(self) -> dict[str, str]:
        """The settings as logged at start-up: secrets masked."""
        out = {}
        for f in fields(self):
            value = getattr(self, f.name)
            out[f.name] = "***" if f.metadata["secret"] and value else str(value)
        return out

    @classmethod
    def documentation(cls) -> list[tuple[str, str, str]]:
        """(variable, default, meaning) for every setting: the source of docs/configuration.md."""
        return [(PREFIX + f.metadata["env"], f.metadata["default"], f.metadata["doc"]) for f in fields(cls)]


def _read_secret_files(values: dict[str, Any]) -> list[str]:
    """Secrets given as files (mounted Kubernetes Secrets) become the secret values themselves."""
    problems = []
    for file_field, value_field in (
        ("kafka_password_file", "kafka_password"),
        ("es_password_file", "es_password"),
        ("es_api_key_file", "es_api_key"),
    ):
        path = values[file_field]
        if path is None:
            continue
        variable = PREFIX + value_field.upper()
        if values[value_field]:
            problems.append(f"{variable} and {variable}_FILE are both set: choose one")
            continue
        try:
            values[value_field] = path.read_text().strip()
        except OSError as exc:
            problems.append(f"{variable}_FILE={str(path)!r}: unreadable ({exc.strerror})")
            continue
        if not values[value_field]:
            problems.append(f"{variable}_FILE={str(path)!r}: the file is empty")
    return problems


def _own_namespace() -> str:
    try:
        return SERVICE_ACCOUNT_NAMESPACE.read_text().strip() or "default"
    except OSError:
        return "default"


def _cross_checks(values: dict[str, Any]) -> list[str]:
    problems = []
    topics = {values["raw_topic"], values["clean_topic"], values["dead_letter_topic"]}
    if len(topics) != 3:
        problems.append(
            f"{PREFIX}TOPIC, {PREFIX}CLEAN_TOPIC and {PREFIX}DEAD_LETTER_TOPIC must differ "
            f"(got {values['raw_topic']!r}, {values['clean_topic']!r}, {values['dead_letter_topic']!r})"
        )
    overlap = set(values["include_reasons"]) & set(values["exclude_reasons"])
    if overlap:
        problems.append(f"{PREFIX}INCLUDE_REASONS and {PREFIX}EXCLUDE_REASONS both name {', '.join(sorted(overlap))}")
    if values["es_password"] and not values["es_username"]:
        problems.append(f"{PREFIX}ES_PASSWORD is set but {PREFIX}ES_USERNAME is empty")
    if not values["lease_retry_period"] < values["lease_renew_deadline"] < values["lease_duration"]:
        problems.append(
            f"{PREFIX}LEASE_RETRY_PERIOD < {PREFIX}LEASE_RENEW_DEADLINE < {PREFIX}LEASE_DURATION must hold "
            f"(got {values['lease_retry_period']}s, {values['lease_renew_deadline']}s, {values['lease_duration']}s)"
        )
    if values["watch_idle_timeout"] <= values["watch_timeout"]:
        # A quiet scope sends nothing until the server ends the WATCH: that is no dead connection.
        problems.append(f"{PREFIX}WATCH_IDLE_TIMEOUT must be longer than {PREFIX}WATCH_TIMEOUT")
    if values["kafka_security_protocol"].startswith("SASL") and not (
        values["kafka_username"] and values["kafka_password"]
    ):
        problems.append(
            f"{PREFIX}KAFKA_SECURITY_PROTOCOL={values['kafka_security_protocol']} needs {PREFIX}KAFKA_USERNAME "
            f"and {PREFIX}KAFKA_PASSWORD (or {PREFIX}KAFKA_PASSWORD_FILE)"
        )
    if bool(values["kafka_cert_file"]) != bool(values["kafka_key_file"]):
        problems.append(f"{PREFIX}KAFKA_CERT_FILE and {PREFIX}KAFKA_KEY_FILE go together")
    if bool(values["es_client_cert"]) != bool(values["es_client_key"]):
        problems.append(f"{PREFIX}ES_CLIENT_CERT and {PREFIX}ES_CLIENT_KEY go together")
    tls_files = values["kafka_ca_file"] or values["kafka_cert_file"]
    if tls_files and values["kafka_security_protocol"] in ("PLAINTEXT", "SASL_PLAINTEXT"):
        problems.append(
            f"{PREFIX}KAFKA_CA_FILE/_CERT_FILE are set but {PREFIX}KAFKA_SECURITY_PROTOCOL="
            f"{values['kafka_security_protocol']} does not use TLS"
        )
    if values["es_api_key"] and values["es_username"]:
        problems.append(f"{PREFIX}ES_API_KEY and {PREFIX}ES_USERNAME are exclusive: choose one way to authenticate")
    return problems


def markdown_table() -> str:
    """The settings table of docs/configuration.md (a test keeps the two identical)."""
    rows = ["| variable | default | meaning |", "|---|---|---|"]
    for variable, default, doc in Settings.documentation():
        rows.append(f"| `{variable}` | {f'`{default}`' if default else '(empty)'} | {doc} |")
    return "\n".join(rows) + "\n"


if __name__ == "__main__":
    print(markdown_table(), end="")
