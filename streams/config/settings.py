"""The worker's settings: one typed, frozen object, read from the environment when the app is built.

Every variable is ``K8SEV_<NAME>``; ``KUBECONFIG`` is honoured too. A bad value never surfaces as a
stack trace deep in a client: :meth:`Settings.from_env` collects *every* problem, cross-field checks
included, and raises one :class:`SettingsError` that names each variable, its value and what was
expected. Each field's docstring says what it does and why its default is what it is; the table in
``docs/configuration.md`` is generated from them (``python -m streams.config.settings``).
"""

from __future__ import annotations

import ast
import functools
import inspect
import os
import socket
import uuid
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field, fields, replace
from pathlib import Path
from typing import Any, Literal, TypeVar, cast

from streams.config import patterns
from streams.config import values as v

PREFIX = "K8SEV_"
SERVICE_ACCOUNT_NAMESPACE = Path("/var/run/secrets/kubernetes.io/serviceaccount/namespace")

Engine = Literal["elasticsearch", "opensearch"]
Role = Literal["all", "ingest", "streams"]
T = TypeVar("T")


class SettingsError(ValueError):
    """One or more settings are invalid; ``problems`` lists each as ``VAR=value: why``."""

    def __init__(self, problems: list[str]) -> None:
        self.problems = problems
        super().__init__("invalid configuration:\n  " + "\n  ".join(problems))


def setting(env: str, default: str, parse: Callable[[str], T], *, secret: bool = False) -> T:
    """A field read from ``K8SEV_<env>``; ``default`` is the text a missing variable stands for."""
    metadata = {"env": env, "default": default, "parse": parse, "secret": secret}
    # A secret stays out of repr(): a Settings in a log line or a traceback's locals shows no password.
    return field(default=parse(default), metadata=metadata, repr=not secret)


@dataclass(frozen=True)
class KafkaSettings:
    brokers: tuple[str, ...] = setting("BROKER", "kafka://localhost:9092", v.brokers)
    """Kafka bootstrap servers, ``host:port`` or ``kafka://host:port``, comma-separated.
    The seed's ``--broker`` flag; localhost so a first run needs no configuration."""
    raw_topic: str = setting("TOPIC", "k8s-event", v.topic)
    """Raw topic: the Event JSON, keyed by uid. The seed's topic name, so its Logstash reads it unchanged."""
    clean_topic: str = setting("CLEAN_TOPIC", "k8s-event-clean", v.topic)
    """Deduplicated event versions, keyed by uid (co-partitioned with the raw topic)."""
    dead_letter_topic: str = setting("DEAD_LETTER_TOPIC", "k8s-event-dead-letter", v.topic)
    """Records that could not become documents, with the reason and the original bytes."""
    topic_partitions: int = setting("TOPIC_PARTITIONS", "6", v.positive_int)
    """Partitions of the topics and tables the worker creates. 6 lets 1, 2, 3 or 6 workers share them evenly;
    it cannot shrink later."""
    topic_replicas: int = setting("TOPIC_REPLICAS", "1", v.positive_int)
    """Replication factor of those topics. 1 works on a single broker; use 3 on a production cluster."""
    security_protocol: str = setting("KAFKA_SECURITY_PROTOCOL", "PLAINTEXT", v.kafka_protocol)
    """PLAINTEXT, SSL, SASL_PLAINTEXT or SASL_SSL. PLAINTEXT matches a broker with no listener configuration."""
    sasl_mechanism: str = setting("KAFKA_SASL_MECHANISM", "SCRAM-SHA-512", v.sasl_mechanism)
    """PLAIN, SCRAM-SHA-256 or SCRAM-SHA-512. SCRAM-SHA-512 never sends the password itself."""
    username: str = setting("KAFKA_USERNAME", "", v.text)
    """SASL user."""
    password: str = setting("KAFKA_PASSWORD", "", v.text, secret=True)
    """SASL password; better given as a file (``_FILE``)."""
    password_file: Path | None = setting("KAFKA_PASSWORD_FILE", "", v.optional_file)
    """File holding the SASL password: a mounted Secret, so the password is in no environment listing."""
    ca_file: Path | None = setting("KAFKA_CA_FILE", "", v.optional_file)
    """CA bundle for Kafka TLS; empty: the system's CAs."""
    cert_file: Path | None = setting("KAFKA_CERT_FILE", "", v.optional_file)
    """Client certificate for Kafka TLS (mTLS listeners)."""
    key_file: Path | None = setting("KAFKA_KEY_FILE", "", v.optional_file)
    """Its private key."""
    max_request_bytes: int = setting("KAFKA_MAX_REQUEST_BYTES", "1048576", v.record_bytes)
    """Largest record the producer sends, and the ``max.message.bytes`` of the topics the worker creates
    (checked against an existing raw topic at start-up). 1 MiB is Kafka's default; a bigger Event is cut
    to fit and marked ``truncated``."""
    startup_timeout: float = setting("KAFKA_STARTUP_TIMEOUT", "5m", v.positive_duration)
    """How long start-up waits for a reachable broker and its topic calls (a line per attempt, /healthz
    answering) before the worker exits non-zero: rides out a broker's rolling restart, and a wrong
    address still shows as CrashLoopBackOff within minutes."""
    session_timeout: float = setting("SESSION_TIMEOUT", "30s", v.positive_duration)
    """A worker silent this long leaves the consumer group. Faust's 60 s keeps a killed worker's partitions
    idle a whole minute; 30 s halves that and still rides out long GC or I/O pauses."""


@dataclass(frozen=True)
class KubeSettings:
    kubeconfig: Path | None = setting("KUBECONFIG", "", v.optional_file)
    """Kubeconfig file; empty: ``$KUBECONFIG``, then in-cluster credentials, then ``~/.kube/config``,
    the order ``kubectl`` users expect."""
    cluster: str = setting("CLUSTER", "default", v.label)
    """Cluster name written on every document, so one archive can hold several clusters."""
    namespaces: tuple[str, ...] = setting("NAMESPACES", "", v.kube_namespaces)
    """Namespaces to watch; empty: all. One watch per namespace; all namespaces is one watch, the cheapest."""
    event_types: tuple[str, ...] = setting("EVENT_TYPES", "", v.event_types)
    """Keep only these types (Normal, Warning); empty: all, since a post-mortem needs the Normal ones too."""
    include_reasons: tuple[str, ...] = setting("INCLUDE_REASONS", "", v.parse_list)
    """Keep only these reasons; empty: all."""
    exclude_reasons: tuple[str, ...] = setting("EXCLUDE_REASONS", "", v.parse_list)
    """Drop these reasons; empty: none."""
    exclude_namespaces: tuple[str, ...] = setting("EXCLUDE_NAMESPACES", "", v.namespace_patterns)
    """Drop the events of these namespaces (the Event's own, `metadata.namespace`): names, or globs with `*`
    and `?` (`kube-*`); empty: none. For noise in a namespace that is still watched; a watched namespace
    (`K8SEV_NAMESPACES`) cannot be excluded."""
    exclude_kinds: tuple[str, ...] = setting("EXCLUDE_KINDS", "", v.kinds)
    """Drop the events about these kinds (`involvedObject.kind`, exactly: `Lease`, `ConfigMap`); empty: none."""
    exclude_components: tuple[str, ...] = setting("EXCLUDE_COMPONENTS", "", v.parse_list)
    """Drop the events these components reported, named in `source.component` (core/v1 writers) or
    `reportingComponent` (events.k8s.io/v1 writers' `reportingController`); empty: none."""
    exclude_message: str = setting("EXCLUDE_MESSAGE", "", v.message_pattern)
    """Drop the events whose message matches this RE2 regular expression anywhere (`(?i)` ignores case,
    `^` anchors; one pattern: join alternatives with a bar); empty: none. RE2 matches in time linear in
    the message, so no pattern can stall ingest; it has no look-around or backreferences."""
    list_page_size: int = setting("LIST_PAGE_SIZE", "500", v.positive_int)
    """Events per LIST page: client-go's informers use 500, a size the API server serves cheaply."""
    watch_timeout: float = setting("WATCH_TIMEOUT", "1m", v.positive_duration)
    """Server-side WATCH timeout: the watch is re-opened this often. Short, because a quiet scope may get no
    bookmark until the server ends the watch, and the idle timeout must exceed it."""
    watch_idle_timeout: float = setting("WATCH_IDLE_TIMEOUT", "90s", v.positive_duration)
    """Re-open a WATCH silent this long: a dead connection. Longer than the watch timeout (checked)."""
    watch_stall_after: float = setting("WATCH_STALL_AFTER", "2m", v.positive_duration)
    """A WATCH that delivered nothing (no event, no bookmark) this long is checked with a LIST: if the scope
    has events newer than the watch got to, the watch is stalled (logged, counted, 503 on /readyz) and
    lists again. New versions flow again at most this plus one watch timeout after a stall began."""
    event_ttl: float = setting("EVENT_TTL", "1h", v.positive_duration)
    """The API server's ``--event-ttl`` (1 h by default): a pause longer than this may have lost events,
    and is reported."""


@dataclass(frozen=True)
class LeaseSettings:
    namespace: str = setting("LEASE_NAMESPACE", "", v.kube_namespace)
    """Namespace of the ingest Lease; empty: the pod's own (where its Role allows Leases), else ``default``."""
    name: str = setting("LEASE_NAME", "", v.kube_name)
    """Name of the ingest Lease; empty: ``<app id>-ingest``, so two deployments never share one."""
    duration: float = setting("LEASE_DURATION", "15s", v.positive_duration)
    """A leader silent this long is replaced. client-go's default: takeover in about 15 s."""
    renew_deadline: float = setting("LEASE_RENEW_DEADLINE", "10s", v.positive_duration)
    """A leader that cannot renew this long stops watching, before anyone else may take over (< duration)."""
    retry_period: float = setting("LEASE_RETRY_PERIOD", "2s", v.positive_duration)
    """How often the Lease, and with it the checkpoint, is written: at most this much is re-sent after a crash."""
    identity: str = setting("IDENTITY", "", v.text)
    """This worker's name in the Lease; empty: the host (pod) name and a random suffix, unique per start."""


@dataclass(frozen=True)
class SearchSettings:
    engine: Engine = setting("SEARCH_ENGINE", "elasticsearch", cast(Callable[[str], Engine], v.engine))
    """``elasticsearch`` or ``opensearch``: each needs its own client (Elasticsearch's refuses OpenSearch)."""
    urls: tuple[str, ...] = setting("ES_URL", "http://localhost:9200", v.http_urls)
    """Search engine URL(s), comma-separated; localhost so a first run needs no configuration."""
    username: str = setting("ES_USERNAME", "", v.text)
    """Basic-auth user."""
    password: str = setting("ES_PASSWORD", "", v.text, secret=True)
    """Basic-auth password; better given as a file (``_FILE``)."""
    api_key: str = setting("ES_API_KEY", "", v.text, secret=True)
    """API key (Elasticsearch), exclusive with the user."""
    password_file: Path | None = setting("ES_PASSWORD_FILE", "", v.optional_file)
    """File holding the password (a mounted Secret)."""
    api_key_file: Path | None = setting("ES_API_KEY_FILE", "", v.optional_file)
    """File holding the API key (a mounted Secret)."""
    ca_certs: Path | None = setting("ES_CA_CERTS", "", v.optional_file)
    """CA bundle for https; empty: the system's CAs."""
    client_cert: Path | None = setting("ES_CLIENT_CERT", "", v.optional_file)
    """Client certificate for https."""
    client_key: Path | None = setting("ES_CLIENT_KEY", "", v.optional_file)
    """Its private key."""
    index_prefix: str = setting("INDEX_PREFIX", "k8s-event", v.index_prefix)
    """Daily indices ``<prefix>-YYYY.MM.dd``: the seed's Logstash names, so Kibana objects keep working."""
    index_replicas: int = setting("INDEX_REPLICAS", "1", v.non_negative_int)
    """Replicas of the daily indices: 1 survives the loss of one node; 0 for a single-node engine."""
    index_refresh_interval: str = setting("INDEX_REFRESH_INTERVAL", "1s", v.text)
    """Refresh interval of the indices: the engine's own default, so events are searchable within a second."""


@dataclass(frozen=True)
class WebSettings:
    port: int = setting("WEB_PORT", "6066", v.port)
    """Faust web server: views, /healthz, /readyz, /metrics. Faust's own default port."""
    bind: str = setting("WEB_BIND", "0.0.0.0", v.text)  # noqa: S104 - a pod must be reachable on its IP
    """Address the web server listens on; all, so probes and Prometheus reach the pod."""
    host: str = setting("WEB_HOST", "", v.text)
    """How other workers reach this one's web server (the pod IP); empty: the host name."""


@dataclass(frozen=True)
class StageSettings:
    role: Role = setting("ROLE", "all", cast(Callable[[str], Role], v.role))
    """What this worker runs: ``all`` (watch and streams), ``ingest`` (only the watch: it is never slowed by
    the other stages), ``streams`` (dedup, counts, sink, retention: scales out). ``all``, so one worker
    does it all."""
    ingest: bool = setting("INGEST", "true", v.parse_bool)
    """Run the Kubernetes watch in this worker (only the Lease holder watches): on, so one worker does it all.
    ``false`` is the same as role ``streams``."""
    ingest_queue: int = setting("INGEST_QUEUE", "1000", v.positive_int)
    """Events buffered between the watch and Kafka: enough for two LIST pages, small enough to bound memory."""
    dedup_horizon: float = setting("DEDUP_HORIZON", "2h", v.positive_duration)
    """How long dedup remembers a uid: twice the API server's event TTL, so every re-send is still known."""
    store: str = setting("STORE", "rocksdb://", v.store)
    """Where tables live: ``rocksdb://`` (on disk under the data directory: memory stays flat with millions
    of remembered uids, and a restart on the same directory reads only the changelog written since: 1,000,000
    uids, peak 259 MiB, ready 30 s after ``kill -9``) or ``memory://`` (rebuilt from the changelog at every
    start; about 0.6 KiB of memory per uid remembered). The data directory needs about 60 bytes per distinct
    event of the last three to four dedup horizons."""
    dedup_batch: int = setting("DEDUP_BATCH", "500", v.positive_int)
    """Raw records dedup handles at a time: their clean records are sent together and remembered once Kafka
    acknowledged them all. The size of a bulk request, so a batch flows on to the sink as one."""
    dedup_within: float = setting("DEDUP_WITHIN", "100ms", v.positive_duration)
    """Longest wait to fill a dedup batch: adds at most this much latency at low rates."""
    bulk_size: int = setting("BULK_SIZE", "500", v.positive_int)
    """Documents per bulk request: Elasticsearch's guidance is a few MB per request; 500 events is about 1 MB."""
    bulk_bytes: int = setting("BULK_BYTES", "10000000", v.positive_int)
    """Bytes per bulk request at most (a larger batch goes as several requests): 10 MB is in the engines'
    recommended 5-15 MB and a tenth of their ``http.max_content_length`` (100 MB). A 413 still splits."""
    bulk_within: float = setting("BULK_WITHIN", "250ms", v.positive_duration)
    """Longest wait to fill a bulk request. At low rates it adds to the refresh interval: with 1s, p99
    created -> searchable at 200 events/s was 2.2-2.3 s; with 250ms, 1.5 s (bench.latency). At high rates
    requests fill to ``K8SEV_BULK_SIZE`` first."""
    sink_unready_after: float = setting("SINK_UNREADY_AFTER", "1m", v.positive_duration)
    """/readyz fails once bulk requests have failed this long without a success: long enough to ride out
    an engine's restart or a GC pause, short enough that an alert sees a stuck sink within minutes."""
    retention_days: int = setting("RETENTION_DAYS", "30", v.non_negative_int)
    """Delete daily indices older than this; 0: never. A month covers most post-mortems."""
    retention_interval: float = setting("RETENTION_INTERVAL", "1h", v.positive_duration)
    """How often retention runs; hourly is plenty for daily indices."""
    shutdown_timeout: float = setting("SHUTDOWN_TIMEOUT", "30s", v.positive_duration)
    """Longest SIGTERM-to-exit: half the Deployment's 60 s grace period, so the Lease is released and
    offsets committed before a SIGKILL. A batch not indexed by then is left for the next owner."""
    data_dir: Path | None = setting("DATA_DIR", "", v.optional_dir)
    """Faust table state; empty: ``$XDG_STATE_HOME/k8s-event-streams/<app id>`` (``~/.local/state/...``)."""


@dataclass(frozen=True)
class ExplorerSettings:
    enabled: bool = setting("EXPLORER", "true", v.parse_bool)
    """Serve the explorer page at /ui/ and its JSON API at /ui/api/: on, so every worker has something to look at."""
    auth: str = setting("EXPLORER_AUTH", "", v.explorer_auth)
    """Who may read the explorer: `kubernetes` (a bearer token checked by a TokenReview, each namespace by a
    SubjectAccessReview for `list events`), `token`, `basic` or `none`. Empty: `token` or `basic` when their
    credentials are set, else `none`, as before the setting existed."""
    review_ttl: float = setting("EXPLORER_REVIEW_TTL", "30s", v.review_ttl)
    """How long a TokenReview or SubjectAccessReview answer is reused: a revoked RoleBinding or token stops
    working within it. 30 s keeps the API server's load to a few reviews per person and minute."""
    review_cache: int = setting("EXPLORER_REVIEW_CACHE", "10000", v.positive_int)
    """Most review answers remembered (tokens and (person, namespace) pairs); the oldest go first."""
    token: str = setting("EXPLORER_TOKEN", "", v.text, secret=True)
    """Bearer token the page and its API demand (also accepted as the basic-auth password); empty: none.
    Event text can hold secrets: set one when the port is reachable by more than the operators."""
    token_file: Path | None = setting("EXPLORER_TOKEN_FILE", "", v.optional_file)
    """File holding the token (a mounted Secret)."""
    username: str = setting("EXPLORER_USERNAME", "", v.basic_auth_user)
    """Basic-auth user the page and its API demand (with the password)."""
    password: str = setting("EXPLORER_PASSWORD", "", v.text, secret=True)
    """Its password; better given as a file (`_FILE`)."""
    password_file: Path | None = setting("EXPLORER_PASSWORD_FILE", "", v.optional_file)
    """File holding the password (a mounted Secret)."""
    timeout: float = setting("EXPLORER_TIMEOUT", "10s", v.explorer_timeout)
    """Longest wait for the search engine per request: a page should answer, or say why, within seconds."""

    @property
    def protected(self) -> bool:
        return self.mode != "none"

    @property
    def mode(self) -> str:
        """The auth in force: ``auth``, or from the credentials set when it is empty."""
        if self.auth:
            return self.auth
        return "token" if self.token else "basic" if self.username else "none"


@dataclass(frozen=True)
class EnrichSettings:
    enabled: bool = setting("ENRICH", "false", v.parse_bool)
    """Add ``involvedObjectMeta`` (the involved object's allow-listed labels and owner chain) to every event,
    from metadata-only watches the ingest leader keeps: never a request per event. Off, so the raw topic keeps
    the seed's Logstash shape unless asked; on needs list/watch on the resources below (k8s/rbac.yaml)."""
    resources: tuple[str, ...] = setting(
        "ENRICH_RESOURCES",
        "v1/pods,apps/v1/replicasets,apps/v1/deployments,apps/v1/statefulsets,apps/v1/daemonsets,"
        "batch/v1/jobs,batch/v1/cronjobs,v1/nodes",
        v.api_resources,
    )
    """Resources whose metadata is watched, as ``version/resource`` (core) or ``group/version/resource``
    (custom resources too): the kinds events are about and the controllers that own them. One cluster-wide
    watch each; one that is refused (403) is reported on /readyz and in the log, and the others go on."""
    labels: tuple[str, ...] = setting("ENRICH_LABELS", "app.kubernetes.io/*,app,k8s-app,component", v.label_keys)
    """Label keys copied onto events (a trailing ``*`` matches a prefix): the recommended labels and the classic
    ``app``/``k8s-app``/``component``. An allow-list, so a pod's arbitrary labels never grow documents or the index."""
    cache_size: int = setting("ENRICH_CACHE_SIZE", "100000", v.positive_int)
    """Objects the enrichment cache keeps (least recently used out first). About 0.5 KiB each (docs/design.md):
    100,000 is about 52 MiB, room for a cluster of 30,000 pods with their owners and nodes."""
    deleted_grace: float = setting("ENRICH_DELETED_GRACE", "10m", v.positive_duration)
    """How long a deleted object's metadata is kept: the events about its deletion (Killing, SuccessfulDelete)
    come after the DELETED notification and must still be enriched."""


GROUPS: dict[str, type[Any]] = {
    "kafka": KafkaSettings,
    "kube": KubeSettings,
    "lease": LeaseSettings,
    "search": SearchSettings,
    "web": WebSettings,
    "stages": StageSettings,
    "explorer": ExplorerSettings,
    "enrich": EnrichSettings,
}


@dataclass(frozen=True)
class Settings:
    """Everything the worker is told from outside. See ``docs/configuration.md``."""

    app_id: str = setting("APP_ID", "k8s-event-streams", v.app_id)
    """Faust app id: the consumer group, table and changelog names, and the default Lease name."""
    kafka: KafkaSettings = field(default_factory=KafkaSettings)
    kube: KubeSettings = field(default_factory=KubeSettings)
    lease: LeaseSettings = field(default_factory=LeaseSettings)
    search: SearchSettings = field(default_factory=SearchSettings)
    web: WebSettings = field(default_factory=WebSettings)
    stages: StageSettings = field(default_factory=StageSettings)
    explorer: ExplorerSettings = field(default_factory=ExplorerSettings)
    enrich: EnrichSettings = field(default_factory=EnrichSettings)
    #: ``K8SEV_*`` variables of the environment that are no setting (see :meth:`unknown`): logged at start-up.
    ignored: tuple[str, ...] = ()

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> Settings:
        """Read and validate every setting; raise :class:`SettingsError` naming every problem."""
        env = os.environ if environ is None else environ
        values: dict[str, dict[str, Any]] = {"": {}, **{group: {} for group in GROUPS}}
        problems: list[str] = []
        for group, f in _settings_fields():
            var = PREFIX + f.metadata["env"]
            raw = env.get(var)
            if raw is None and f.name == "kubeconfig":
                raw = env.get("KUBECONFIG", "").split(os.pathsep)[0]
                var = "KUBECONFIG" if raw else var
            text = f.metadata["default"] if raw is None else raw
            try:
                values[group][f.name] = f.metadata["parse"](text)
            except ValueError as exc:
                shown = "***" if f.metadata["secret"] else repr(v.redact_all(text))
                problems.append(f"{var}={shown}: {exc}")
        problems.extend(_read_secret_files(values))
        problems.extend(_cross_checks(values))
        if problems:
            raise SettingsError(problems)
        settings = cls(
            app_id=values[""]["app_id"],
            **{group: kind(**values[group]) for group, kind in GROUPS.items()},
            ignored=tuple(cls.unknown(env)),
        )
        return settings.with_derived_defaults(env)

    def with_derived_defaults(self, env: Mapping[str, str]) -> Settings:
        """Fill in the defaults that depend on the app id, the pod or the host."""
        lease = replace(
            self.lease,
            name=self.lease.name or f"{self.app_id}-ingest",
            namespace=self.lease.namespace or _own_namespace(),
            identity=self.lease.identity or f"{socket.gethostname()}-{uuid.uuid4().hex[:8]}",
        )
        web = replace(self.web, host=self.web.host or socket.gethostname())
        data_dir = self.stages.data_dir or Path(env.get("XDG_STATE_HOME") or Path.home() / ".local" / "state") / (
            f"k8s-event-streams/{self.app_id}"
        )
        return replace(self, lease=lease, web=web, stages=replace(self.stages, data_dir=data_dir))

    @property
    def runs_ingest(self) -> bool:
        return self.stages.ingest and self.stages.role in ("all", "ingest")

    @property
    def runs_streams(self) -> bool:
        return self.stages.role in ("all", "streams")

    @property
    def data_dir(self) -> Path:
        """Faust's data directory (set by :meth:`with_derived_defaults`)."""
        return self.stages.data_dir or Path(".")

    def describe(self) -> dict[str, str]:
        """The settings as logged at start-up: secrets masked, keys ``group.name``."""
        out = {"app_id": self.app_id}
        for group, f in _settings_fields():
            if not group:
                continue
            value = getattr(getattr(self, group), f.name)
            out[f"{group}.{f.name}"] = "***" if f.metadata["secret"] and value else str(value)
        return out

    @staticmethod
    def unknown(environ: Mapping[str, str]) -> list[str]:
        """``K8SEV_*`` variables in ``environ`` that are no setting: a typo, or one a newer version
        no longer reads (``K8SEV_COUNT_BATCH``, ``K8SEV_COUNT_WITHIN``). Logged, not fatal."""
        known = {PREFIX + f.metadata["env"] for _, f in _settings_fields()}
        return sorted(name for name in environ if name.startswith(PREFIX) and name not in known)

    @classmethod
    def documentation(cls) -> list[tuple[str, str, str, str]]:
        """(group, variable, default, meaning and why) for every setting: the source of docs/configuration.md."""
        docs = _field_docs()
        return [
            (group, PREFIX + f.metadata["env"], f.metadata["default"], docs.get((group, f.name), ""))
            for group, f in _settings_fields()
        ]


def _settings_fields() -> Iterator[tuple[str, Any]]:
    """(group, field) of every environment-backed field; group "" for the top level."""
    for f in fields(Settings):
        if "env" in f.metadata:
            yield "", f
    for group, kind in GROUPS.items():
        for f in fields(kind):
            yield group, f


@functools.cache
def _field_docs() -> dict[tuple[str, str], str]:
    """Each field's docstring (the string literal under it), joined into one line."""
    tree = ast.parse(inspect.getsource(inspect.getmodule(Settings)))  # type: ignore[arg-type]
    group_of = {kind.__name__: group for group, kind in GROUPS.items()} | {"Settings": ""}
    out: dict[tuple[str, str], str] = {}
    for node in tree.body:
        if not isinstance(node, ast.ClassDef) or node.name not in group_of:
            continue
        for current, following in zip(node.body, node.body[1:], strict=False):
            if (
                isinstance(current, ast.AnnAssign)
                and isinstance(current.target, ast.Name)
                and isinstance(following, ast.Expr)
                and isinstance(following.value, ast.Constant)
                and isinstance(following.value.value, str)
            ):
                text = " ".join(following.value.value.split()).replace("``", "`")
                out[(group_of[node.name], current.target.id)] = text
    return out


def _read_secret_files(values: dict[str, dict[str, Any]]) -> list[str]:
    """Secrets given as files (mounted Kubernetes Secrets) become the secret values themselves."""
    problems = []
    for group, file_field, value_field, variable in (
        ("kafka", "password_file", "password", "KAFKA_PASSWORD"),
        ("search", "password_file", "password", "ES_PASSWORD"),
        ("search", "api_key_file", "api_key", "ES_API_KEY"),
        ("explorer", "token_file", "token", "EXPLORER_TOKEN"),
        ("explorer", "password_file", "password", "EXPLORER_PASSWORD"),
    ):
        section = values[group]
        if file_field not in section or value_field not in section:
            continue  # already reported
        path = section[file_field]
        if path is None:
            continue
        variable = PREFIX + variable
        if section[value_field]:
            problems.append(f"{variable} and {variable}_FILE are both set: choose one")
            continue
        try:
            section[value_field] = path.read_text().strip()
        except OSError as exc:
            problems.append(f"{variable}_FILE={str(path)!r}: unreadable ({exc.strerror})")
            continue
        if not section[value_field]:
            problems.append(f"{variable}_FILE={str(path)!r}: the file is empty")
    return problems


def _own_namespace() -> str:
    try:
        return SERVICE_ACCOUNT_NAMESPACE.read_text().strip() or "default"
    except OSError:
        return "default"


class _Unparsed(Exception):
    """A cross-check needs a value that already failed to parse (and was reported)."""


def _cross_checks(values: dict[str, dict[str, Any]]) -> list[str]:
    """Checks across fields, each run when the values it needs parsed (so all are reported in one go)."""

    def get(group: str, name: str) -> Any:
        try:
            return values[group][name]
        except KeyError:
            raise _Unparsed from None

    kafka = functools.partial(get, "kafka")
    kube = functools.partial(get, "kube")
    lease = functools.partial(get, "lease")
    search = functools.partial(get, "search")
    p = PREFIX

    def topics_differ() -> str | None:
        names = (kafka("raw_topic"), kafka("clean_topic"), kafka("dead_letter_topic"))
        if len(set(names)) != 3:
            return f"{p}TOPIC, {p}CLEAN_TOPIC and {p}DEAD_LETTER_TOPIC must differ (got {', '.join(map(repr, names))})"
        return None

    def reasons_disjoint() -> str | None:
        overlap = set(kube("include_reasons")) & set(kube("exclude_reasons"))
        if overlap:
            return f"{p}INCLUDE_REASONS and {p}EXCLUDE_REASONS both name {', '.join(sorted(overlap))}"
        return None

    def watched_not_excluded() -> str | None:
        # Its watch would run only to drop every event it sees.
        exclusions = patterns.Names(kube("exclude_namespaces"))
        excluded = [name for name in kube("namespaces") if name in exclusions]
        if excluded:
            return f"{p}EXCLUDE_NAMESPACES excludes watched namespace(s) {', '.join(excluded)} ({p}NAMESPACES)"
        return None

    def es_user_with_password() -> str | None:
        if search("password") and not search("username"):
            return f"{p}ES_PASSWORD is set but {p}ES_USERNAME is empty"
        return None

    def lease_timings() -> str | None:
        retry, deadline, duration = lease("retry_period"), lease("renew_deadline"), lease("duration")
        if not retry < deadline < duration:
            return (
                f"{p}LEASE_RETRY_PERIOD < {p}LEASE_RENEW_DEADLINE < {p}LEASE_DURATION must hold "
                f"(got {retry}s, {deadline}s, {duration}s)"
            )
        return None

    def idle_after_timeout() -> str | None:
        # A quiet scope sends nothing until the server ends the WATCH: that is no dead connection.
        if kube("watch_idle_timeout") <= kube("watch_timeout"):
            return (
                f"{p}WATCH_IDLE_TIMEOUT must be longer than {p}WATCH_TIMEOUT "
                f"(got {kube('watch_idle_timeout')}s and {kube('watch_timeout')}s)"
            )
        return None

    def sasl_credentials() -> str | None:
        protocol = kafka("security_protocol")
        if protocol.startswith("SASL") and not (kafka("username") and kafka("password")):
            return (
                f"{p}KAFKA_SECURITY_PROTOCOL={protocol} needs {p}KAFKA_USERNAME "
                f"and {p}KAFKA_PASSWORD (or {p}KAFKA_PASSWORD_FILE)"
            )
        return None

    def kafka_cert_pair() -> str | None:
        if bool(kafka("cert_file")) != bool(kafka("key_file")):
            return f"{p}KAFKA_CERT_FILE and {p}KAFKA_KEY_FILE go together"
        return None

    def es_cert_pair() -> str | None:
        if bool(search("client_cert")) != bool(search("client_key")):
            return f"{p}ES_CLIENT_CERT and {p}ES_CLIENT_KEY go together"
        return None

    def kafka_tls_files_need_tls() -> str | None:
        protocol = kafka("security_protocol")
        if (kafka("ca_file") or kafka("cert_file")) and protocol in ("PLAINTEXT", "SASL_PLAINTEXT"):
            return f"{p}KAFKA_CA_FILE/_CERT_FILE are set but {p}KAFKA_SECURITY_PROTOCOL={protocol} does not use TLS"
        return None

    def explorer_user_with_password() -> str | None:
        if bool(get("explorer", "username")) != bool(get("explorer", "password")):
            return f"{p}EXPLORER_USERNAME and {p}EXPLORER_PASSWORD go together"
        return None

    def explorer_auth_has_credentials() -> str | None:
        auth = get("explorer", "auth")
        if auth == "token" and not get("explorer", "token"):
            return f"{p}EXPLORER_AUTH=token needs {p}EXPLORER_TOKEN or {p}EXPLORER_TOKEN_FILE"
        if auth == "basic" and not get("explorer", "username"):
            return f"{p}EXPLORER_AUTH=basic needs {p}EXPLORER_USERNAME and {p}EXPLORER_PASSWORD"
        if auth in ("kubernetes", "none") and (get("explorer", "token") or get("explorer", "username")):
            return f"{p}EXPLORER_AUTH={auth} ignores {p}EXPLORER_TOKEN and {p}EXPLORER_USERNAME: unset them"
        return None

    def role_and_ingest() -> str | None:
        if get("stages", "role") == "ingest" and not get("stages", "ingest"):
            return f"{p}ROLE=ingest needs {p}INGEST=true (an ingest-only worker that does not ingest does nothing)"
        return None

    def one_es_auth() -> str | None:
        if search("api_key") and search("username"):
            return f"{p}ES_API_KEY and {p}ES_USERNAME are exclusive: choose one way to authenticate"
        return None

    problems = []
    for check in (
        topics_differ,
        reasons_disjoint,
        watched_not_excluded,
        es_user_with_password,
        lease_timings,
        idle_after_timeout,
        sasl_credentials,
        kafka_cert_pair,
        es_cert_pair,
        kafka_tls_files_need_tls,
        one_es_auth,
        role_and_ingest,
        explorer_user_with_password,
        explorer_auth_has_credentials,
    ):
        try:
            problem = check()
        except _Unparsed:
            continue
        if problem:
            problems.append(problem)
    return problems


GROUP_TITLES = {
    "": "App",
    "kafka": "Kafka",
    "kube": "Kubernetes",
    "lease": "Lease",
    "search": "Search engine",
    "web": "Web",
    "stages": "Stages",
    "explorer": "Explorer (`/ui/`)",
    "enrich": "Enrichment (`involvedObjectMeta`)",
}


def markdown_table() -> str:
    """The settings tables of docs/configuration.md, one per group (a test keeps the two identical)."""
    rows: list[str] = []
    current = None
    for group, variable, default, doc in Settings.documentation():
        if group != current:
            current = group
            attribute = f" (`settings.{group}`)" if group else ""
            rows += ["", f"### {GROUP_TITLES[group]}{attribute}", ""]
            rows += ["| variable | default | meaning, and why the default |", "|---|---|---|"]
        rows.append(f"| `{variable}` | {f'`{default}`' if default else '(empty)'} | {doc} |")
    return "\n".join(rows[1:]) + "\n"


if __name__ == "__main__":
    print(markdown_table(), end="")
