"""Parsers of setting values: text from the environment -> a typed value, or ValueError saying what was expected.

Each parser names the rule a value broke (Kafka's topic rules, Elasticsearch's index rules,
Kubernetes' name rules), so a bad setting is fixed from the message alone.
"""

from __future__ import annotations

import re
from pathlib import Path
from urllib.parse import urlsplit

from streams.config import patterns

_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(ms|s|m|h|d)?\s*$")
_UNITS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0, None: 1.0}
# Kafka's legal topic characters; 249 is its length limit.
_TOPIC = re.compile(r"^[A-Za-z0-9._-]{1,249}$")
# Elasticsearch index names: lowercase, none of \ / * ? " < > | space , # :, not starting with - _ + (or .,
# which marks hidden and system indices). The daily suffix -YYYY.MM.dd takes 11 of the 255 bytes.
_INDEX_PREFIX = re.compile(r"^[a-z0-9][a-z0-9._-]{0,199}$")
_LABEL = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,62}$")
# Kubernetes: RFC 1123 labels (namespaces) and subdomains (most object names, Leases among them).
_DNS_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$")
_DNS_SUBDOMAIN = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$")


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


def text(value: str) -> str:
    return value


def positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise ValueError(f"{text!r} is not a whole number") from None
    if value <= 0:
        raise ValueError(f"{text!r} must be a positive integer")
    return value


MIN_RECORD_BYTES = 256 * 1024
MAX_RECORD_BYTES = 100 * 1024 * 1024


def record_bytes(text: str) -> int:
    """A Kafka record size limit: room for an Event with headroom, below what brokers allow at all."""
    value = positive_int(text)
    if not MIN_RECORD_BYTES <= value <= MAX_RECORD_BYTES:
        raise ValueError(f"{text!r} must be between {MIN_RECORD_BYTES} and {MAX_RECORD_BYTES} bytes")
    return value


def non_negative_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise ValueError(f"{text!r} is not a whole number") from None
    if value < 0:
        raise ValueError(f"{text!r} must be zero or a positive integer")
    return value


def positive_duration(text: str) -> float:
    value = parse_duration(text)
    if value <= 0:
        raise ValueError(f"{text!r} must be longer than zero")
    return value


def brokers(text: str) -> tuple[str, ...]:
    urls = parse_list(text)
    if not urls:
        raise ValueError("at least one broker is needed (kafka://host:9092)")
    out = []
    for url in urls:
        if "://" not in url:
            url = f"kafka://{url}"
        parts = urlsplit(url)
        try:
            port = parts.port
        except ValueError:
            port = None
        if parts.scheme not in ("kafka", "aiokafka") or not parts.hostname or port is None:
            raise ValueError(f"{url!r} is not host:port or kafka://host:port")
        out.append(f"kafka://{parts.hostname}:{port}")
    return tuple(out)


def http_urls(text: str) -> tuple[str, ...]:
    urls = parse_list(text)
    if not urls:
        raise ValueError("at least one URL is needed (http://host:9200)")
    for url in urls:
        parts = urlsplit(url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError(f"{url!r} is not an http(s):// URL")
        if parts.username or parts.password:
            raise ValueError(f"{redact(url)!r}: put credentials in K8SEV_ES_USERNAME/_PASSWORD, not the URL")
    return urls


def redact(url: str) -> str:
    try:
        parts = urlsplit(url)
    except ValueError:
        # Not even a URL (an unbalanced "["): still mask whatever sits between ":" and "@".
        return re.sub(r"(//[^/@:]*:)[^/@]*@", r"\1***@", url)
    if parts.password:
        return url.replace(f":{parts.password}@", ":***@")
    return url


def redact_all(text: str) -> str:
    """``text`` with the password of every ``scheme://user:password@`` in it masked."""
    return ",".join(redact(part) for part in text.split(","))


def topic(text: str) -> str:
    if not _TOPIC.match(text) or text in (".", ".."):
        raise ValueError(f"{text!r} is not a legal Kafka topic name (1-249 of A-Z a-z 0-9 . _ -, not . or ..)")
    return text


def index_prefix(text: str) -> str:
    if not _INDEX_PREFIX.match(text):
        raise ValueError(
            f"{text!r} is not a legal Elasticsearch index prefix "
            "(1-200 of lowercase a-z 0-9 . _ -, starting with a letter or digit)"
        )
    return text


def label(text: str) -> str:
    if not _LABEL.match(text):
        raise ValueError(f"{text!r} must be 1-63 characters of A-Z a-z 0-9 . _ -")
    return text


def app_id(text: str) -> str:
    # The app id names the consumer group, the changelog topics and the default Lease
    # (<app id>-ingest), so it must be a Kubernetes name as well as a Kafka one.
    if len(text) > 56 or not _DNS_LABEL.match(text):
        raise ValueError(
            f"{text!r} must be a Kubernetes RFC 1123 label of at most 56 characters "
            "(lowercase a-z 0-9 and -, starting and ending with a letter or digit): it names the ingest Lease"
        )
    return text


def kube_name(text: str) -> str:
    """Empty, or a Kubernetes object name (RFC 1123 subdomain)."""
    if text and (len(text) > 253 or not _DNS_SUBDOMAIN.match(text)):
        raise ValueError(
            f"{text!r} is not a Kubernetes object name (RFC 1123 subdomain: lowercase a-z 0-9 - and ., "
            "at most 253, starting and ending with a letter or digit)"
        )
    return text


def kube_namespace(text: str) -> str:
    """Empty, or a Kubernetes namespace name (RFC 1123 label)."""
    if text and not _DNS_LABEL.match(text):
        raise ValueError(
            f"{text!r} is not a Kubernetes namespace name (RFC 1123 label: lowercase a-z 0-9 and -, at most 63)"
        )
    return text


def kube_namespaces(text: str) -> tuple[str, ...]:
    names = parse_list(text)
    for name in names:
        kube_namespace(name)
    return names


def engine(text: str) -> str:
    if text not in ("elasticsearch", "opensearch"):
        raise ValueError(f"{text!r} is not one of: elasticsearch, opensearch")
    return text


def role(text: str) -> str:
    if text not in ("all", "ingest", "streams"):
        raise ValueError(f"{text!r} is not one of: all, ingest, streams")
    return text


def store(text: str) -> str:
    if text not in ("rocksdb://", "memory://"):
        raise ValueError(f"{text!r} is not one of: rocksdb://, memory://")
    return text


def kafka_protocol(text: str) -> str:
    if text not in ("PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL"):
        raise ValueError(f"{text!r} is not one of PLAINTEXT, SSL, SASL_PLAINTEXT, SASL_SSL")
    return text


def sasl_mechanism(text: str) -> str:
    if text not in ("PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512"):
        raise ValueError(f"{text!r} is not one of PLAIN, SCRAM-SHA-256, SCRAM-SHA-512")
    return text


def port(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise ValueError(f"{text!r} is not a TCP port") from None
    if not 0 < value < 65536:
        raise ValueError(f"{text!r} is not a TCP port (1-65535)")
    return value


def existing_file(text: str) -> Path:
    path = Path(text).expanduser()
    if not path.is_file():
        raise ValueError(f"{text!r}: no such file")
    return path


def optional_file(text: str) -> Path | None:
    return existing_file(text) if text else None


def optional_dir(text: str) -> Path | None:
    """Empty, or a directory that exists or can be created (its parent exists and is a directory)."""
    if not text:
        return None
    path = Path(text).expanduser()
    if path.exists() and not path.is_dir():
        raise ValueError(f"{text!r} exists and is not a directory")
    if not path.exists() and not path.parent.is_dir():
        raise ValueError(f"{text!r}: its parent directory {str(path.parent)!r} does not exist")
    return path


def basic_auth_user(text: str) -> str:
    if ":" in text:
        raise ValueError(f"{text!r}: basic auth forbids ':' in a user name")
    return text.strip()


def explorer_timeout(text: str) -> float:
    value = parse_duration(text)
    if not 0 < value <= 300:
        raise ValueError(f"{text!r} must be from 1ms to 5m (examples: 500ms, 10s)")
    return value


def event_types(text: str) -> tuple[str, ...]:
    types = parse_list(text)
    unknown = [t for t in types if t not in ("Normal", "Warning")]
    if unknown:
        raise ValueError(f"unknown event type(s) {', '.join(unknown)} (Kubernetes has Normal and Warning)")
    return types


# A namespace glob: a namespace name's characters, with * (any run) and ? (one character).
_NAMESPACE_GLOB = re.compile(r"^[a-z0-9*?-]{1,63}$")
# A kind: CustomResourceDefinitions require the lowercased kind to be an RFC 1035 label.
_KIND = re.compile(r"^[A-Za-z]([-A-Za-z0-9]{0,61}[A-Za-z0-9])?$")


def namespace_patterns(text: str) -> tuple[str, ...]:
    """Namespace names and globs of them (``kube-*``, ``team-?-dev``)."""
    items = parse_list(text)
    for item in items:
        if patterns.is_glob(item):
            if not _NAMESPACE_GLOB.match(item):
                raise ValueError(
                    f"{item!r} is not a glob of namespace names (lowercase a-z 0-9 and -, * for any run of "
                    "characters, ? for one; at most 63)"
                )
        else:
            kube_namespace(item)
    return items


def kinds(text: str) -> tuple[str, ...]:
    """Kinds as ``involvedObject.kind`` spells them (``Pod``, ``Lease``): matched exactly."""
    items = parse_list(text)
    for item in items:
        if not _KIND.match(item):
            raise ValueError(f"{item!r} is not a Kubernetes kind (a letter, then letters, digits and -; at most 63)")
        if item[0].islower():
            capital = item[0].upper() + item[1:]
            raise ValueError(f"{item!r}: kinds match as involvedObject.kind spells them ({capital!r}, not {item!r})")
    return items


def message_pattern(text: str) -> str:
    """Empty, or an RE2 regular expression that does not match the empty message."""
    if text:
        patterns.message_regex(text)
    return text


def explorer_auth(text: str) -> str:
    value = text.strip().lower()
    if value not in ("", "kubernetes", "token", "basic", "none"):
        raise ValueError(f"{text!r} is not one of: kubernetes, token, basic, none (empty: from the credentials set)")
    return value


def review_ttl(text: str) -> float:
    value = parse_duration(text)
    if not 0 < value <= 600:
        raise ValueError(f"{text!r} must be from 1ms to 10m: a revoked RoleBinding stops working within it")
    return value


_API_NAME = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")
_API_GROUP = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$")


def api_resource(text: str) -> tuple[str, str, str]:
    """(group, version, resource) of ``v1/pods`` (core group) or ``apps/v1/replicasets``."""
    parts = text.strip().split("/")
    if len(parts) == 2:
        parts = ["", *parts]
    if len(parts) != 3:
        raise ValueError(f"{text!r}: expected version/resource (core group) or group/version/resource")
    group, version, resource = parts
    if group and not _API_GROUP.match(group):
        raise ValueError(f"{text!r}: group {group!r} is not a lower-case DNS name")
    for part, what in ((version, "version"), (resource, "resource")):
        if not _API_NAME.match(part):
            raise ValueError(f"{text!r}: {what} {part!r} is not a lower-case API name")
    return group, version, resource


def api_resources(text: str) -> tuple[str, ...]:
    items = parse_list(text)
    problems = []
    for item in items:
        try:
            api_resource(item)
        except ValueError as exc:
            problems.append(str(exc))
    if problems:
        raise ValueError("; ".join(problems))
    if len(set(items)) != len(items):
        raise ValueError("a resource is listed twice")
    return items


_LABEL_KEY = re.compile(r"^([a-z0-9]([-a-z0-9.]*[a-z0-9])?/)?[A-Za-z0-9]([-A-Za-z0-9_.]*[A-Za-z0-9])?$")


def label_keys(text: str) -> tuple[str, ...]:
    """Label keys, or a prefix glob (``app.kubernetes.io/*``): a key with its last part replaced by ``*``."""
    items = parse_list(text)
    for item in items:
        key = item[:-1] + "x" if item.endswith("*") else item
        if "*" in key or not _LABEL_KEY.match(key) or len(key) > 317:
            raise ValueError(f"{item!r} is not a label key (nor a key ending in *)")
    return items
