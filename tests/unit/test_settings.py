"""Settings from the environment: defaults, every problem named at once, secrets never shown."""

from __future__ import annotations

from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from streams.config.settings import Settings, SettingsError
from streams.config.values import parse_duration


def test_defaults_match_the_seed() -> None:
    settings = Settings.from_env({})
    assert settings.kafka.raw_topic == "k8s-event"
    assert settings.search.index_prefix == "k8s-event"
    assert settings.kafka.brokers == ("kafka://localhost:9092",)
    assert settings.stages.dedup_horizon == 7200
    assert settings.kube.kubeconfig is None


def test_seed_style_broker_lists_are_accepted() -> None:
    settings = Settings.from_env({"K8SEV_BROKER": "10.0.7.14:9092, kafka://10.0.7.15:9093"})
    assert settings.kafka.brokers == ("kafka://10.0.7.14:9092", "kafka://10.0.7.15:9093")


def test_every_bad_value_is_named_in_one_error(tmp_path: Path) -> None:
    env = {
        "K8SEV_TOPIC": "has space",
        "K8SEV_BROKER": "localhost",
        "K8SEV_ES_URL": "localhost:9200",
        "K8SEV_BULK_SIZE": "-1",
        "K8SEV_DEDUP_HORIZON": "forever",
        "K8SEV_KUBECONFIG": str(tmp_path / "missing"),
        "K8SEV_EVENT_TYPES": "Normal,Error",
        "K8SEV_WEB_PORT": "70000",
        "K8SEV_INGEST": "maybe",
    }
    with pytest.raises(SettingsError) as caught:
        Settings.from_env(env)
    named = {problem.split("=", 1)[0] for problem in caught.value.problems}
    assert named == set(env)


def test_cross_checks() -> None:
    with pytest.raises(SettingsError) as caught:
        Settings.from_env(
            {
                "K8SEV_CLEAN_TOPIC": "k8s-event",
                "K8SEV_INCLUDE_REASONS": "BackOff",
                "K8SEV_EXCLUDE_REASONS": "BackOff",
                "K8SEV_ES_PASSWORD": "hunter2",
            }
        )
    text = str(caught.value)
    assert "must differ" in text and "both name BackOff" in text and "ES_USERNAME is empty" in text
    assert "hunter2" not in text


def test_secrets_are_masked_in_errors_and_descriptions() -> None:
    settings = Settings.from_env({"K8SEV_ES_USERNAME": "elastic", "K8SEV_ES_PASSWORD": "hunter2"})
    assert "hunter2" not in str(settings.describe())
    with pytest.raises(SettingsError) as caught:
        Settings.from_env({"K8SEV_ES_URL": "https://elastic:hunter2@es:9200"})
    assert "hunter2" not in str(caught.value)


def test_kubeconfig_falls_back_to_the_kubeconfig_variable(tmp_path: Path) -> None:
    config = tmp_path / "config"
    config.write_text("apiVersion: v1\n")
    assert Settings.from_env({"KUBECONFIG": f"{config}:/other"}).kube.kubeconfig == config


def test_documentation_lists_every_setting_once_with_its_docstring() -> None:
    rows = Settings.documentation()
    assert len(rows) == len({variable for _, variable, _, _ in rows})
    assert {group for group, _, _, _ in rows} == {
        "",
        "kafka",
        "kube",
        "lease",
        "search",
        "web",
        "stages",
        "explorer",
        "enrich",
    }
    undocumented = [variable for _, variable, _, doc in rows if not doc]
    assert undocumented == []
    assert all(variable.startswith("K8SEV_") for _, variable, _, _ in rows)


def test_fields_have_real_typed_defaults() -> None:
    # The defaults are the parsed values of the documented texts, not None placeholders.
    bare = Settings()
    assert bare.kafka.brokers == ("kafka://localhost:9092",)
    assert bare.kafka.topic_partitions == 6 and bare.stages.bulk_within == 0.25
    assert bare.kube.kubeconfig is None and bare.stages.ingest is True
    read = Settings.from_env({"K8SEV_IDENTITY": "x"})
    assert read.kafka == bare.kafka and read.search == bare.search and read.kube == bare.kube


def test_settings_are_frozen() -> None:
    settings = Settings.from_env({})
    with pytest.raises(AttributeError):
        settings.kafka.raw_topic = "other"  # type: ignore[misc]


def test_cross_checks_are_reported_together_with_bad_values() -> None:
    with pytest.raises(SettingsError) as caught:
        Settings.from_env({"K8SEV_BULK_SIZE": "many", "K8SEV_CLEAN_TOPIC": "k8s-event", "K8SEV_WATCH_TIMEOUT": "5m"})
    text = str(caught.value)
    assert "K8SEV_BULK_SIZE='many'" in text and "must differ" in text and "WATCH_IDLE_TIMEOUT must be longer" in text


def test_a_cross_check_on_a_value_that_did_not_parse_is_not_reported_twice() -> None:
    with pytest.raises(SettingsError) as caught:
        Settings.from_env({"K8SEV_LEASE_DURATION": "soon"})
    assert caught.value.problems == [
        "K8SEV_LEASE_DURATION='soon': 'soon' is not a duration (examples: 30s, 5m, 2h, 7d)"
    ]


@pytest.mark.parametrize(
    ("variable", "value", "rule"),
    [
        ("K8SEV_APP_ID", "Event_Streams", "RFC 1123 label"),
        ("K8SEV_LEASE_NAME", "ingest_lease", "RFC 1123 subdomain"),
        ("K8SEV_LEASE_NAMESPACE", "Kube-System", "RFC 1123 label"),
        ("K8SEV_NAMESPACES", "default,Bad_NS", "RFC 1123 label"),
        ("K8SEV_TOPIC", "raw topic", "Kafka topic name"),
        ("K8SEV_INDEX_PREFIX", "Events", "Elasticsearch index prefix"),
        ("K8SEV_INDEX_PREFIX", "_events", "Elasticsearch index prefix"),
    ],
)
def test_names_follow_the_rules_of_the_system_that_holds_them(variable: str, value: str, rule: str) -> None:
    with pytest.raises(SettingsError) as caught:
        Settings.from_env({variable: value})
    (problem,) = caught.value.problems
    assert problem.startswith(f"{variable}=") and rule in problem


def test_a_data_directory_needs_an_existing_parent(tmp_path: Path) -> None:
    assert Settings.from_env({"K8SEV_DATA_DIR": str(tmp_path / "state")}).data_dir == tmp_path / "state"
    with pytest.raises(SettingsError) as caught:
        Settings.from_env({"K8SEV_DATA_DIR": str(tmp_path / "missing" / "state")})
    assert "parent directory" in str(caught.value)


def test_a_missing_kubeconfig_is_reported_under_the_variable_that_named_it(tmp_path: Path) -> None:
    with pytest.raises(SettingsError) as caught:
        Settings.from_env({"KUBECONFIG": str(tmp_path / "nope")})
    assert caught.value.problems[0].startswith("KUBECONFIG=")


@given(st.integers(min_value=0, max_value=10**9), st.sampled_from(["ms", "s", "m", "h", "d", ""]))
def test_durations(amount: int, unit: str) -> None:
    factor = {"ms": 0.001, "s": 1, "m": 60, "h": 3600, "d": 86400, "": 1}[unit]
    assert parse_duration(f"{amount}{unit}") == pytest.approx(amount * factor)


@given(st.text())
def test_durations_reject_or_parse_never_crash(text: str) -> None:
    try:
        value = parse_duration(text)
    except ValueError:
        return
    assert value >= 0


def test_secrets_from_files(tmp_path: Path) -> None:
    password = tmp_path / "password"
    password.write_text("s3cret\n")
    settings = Settings.from_env(
        {
            "K8SEV_KAFKA_SECURITY_PROTOCOL": "SASL_SSL",
            "K8SEV_KAFKA_USERNAME": "alice",
            "K8SEV_KAFKA_PASSWORD_FILE": str(password),
            "K8SEV_ES_USERNAME": "elastic",
            "K8SEV_ES_PASSWORD_FILE": str(password),
        }
    )
    assert settings.kafka.password == "s3cret" and settings.search.password == "s3cret"
    assert "s3cret" not in str(settings.describe())


def test_security_settings_are_checked_together(tmp_path: Path) -> None:
    empty, cert = tmp_path / "empty", tmp_path / "cert.pem"
    empty.write_text("")
    cert.write_text("-----BEGIN CERTIFICATE-----\n")
    with pytest.raises(SettingsError) as caught:
        Settings.from_env(
            {
                "K8SEV_KAFKA_SECURITY_PROTOCOL": "SASL_SSL",
                "K8SEV_ES_PASSWORD": "x",
                "K8SEV_ES_PASSWORD_FILE": str(empty),
            }
        )
    text = str(caught.value)
    assert "both set" in text
    with pytest.raises(SettingsError) as caught:
        Settings.from_env({"K8SEV_KAFKA_SECURITY_PROTOCOL": "SASL_SSL"})
    assert "needs K8SEV_KAFKA_USERNAME" in str(caught.value)
    with pytest.raises(SettingsError) as caught:
        Settings.from_env({"K8SEV_KAFKA_CERT_FILE": str(cert), "K8SEV_KAFKA_SECURITY_PROTOCOL": "SSL"})
    assert "go together" in str(caught.value)
    with pytest.raises(SettingsError) as caught:
        Settings.from_env({"K8SEV_KAFKA_CA_FILE": str(cert)})
    assert "does not use TLS" in str(caught.value)
    with pytest.raises(SettingsError) as caught:
        Settings.from_env({"K8SEV_KAFKA_SASL_MECHANISM": "GSSAPI"})
    assert "K8SEV_KAFKA_SASL_MECHANISM" in str(caught.value)


def test_variables_that_are_no_setting_are_named_not_fatal() -> None:
    settings = Settings.from_env({"K8SEV_COUNT_BATCH": "1000", "K8SEV_TOPIC": "t", "K8SEV_BULK_SIZ": "5", "HOME": "/"})
    assert settings.ignored == ("K8SEV_BULK_SIZ", "K8SEV_COUNT_BATCH")
    assert Settings.from_env({"K8SEV_TOPIC": "t"}).ignored == ()


@given(st.sampled_from(["K8SEV_ES_URL", "K8SEV_KAFKA_BROKERS"]), st.text(max_size=60))
def test_any_url_setting_is_read_or_named_as_an_error_never_a_crash(name: str, value: str) -> None:
    env = {"K8SEV_ES_URL": "http://127.0.0.1:9200", name: value}
    try:
        Settings.from_env(env)
    except SettingsError as exc:
        assert name in str(exc)


def test_a_url_that_is_not_one_is_a_settings_error() -> None:
    with pytest.raises(SettingsError) as caught:
        Settings.from_env({"K8SEV_ES_URL": "http://x[:9200"})
    assert "K8SEV_ES_URL='http://x[:9200'" in str(caught.value)


def test_enrichment_settings_default_off_and_every_bad_value_is_named() -> None:
    settings = Settings.from_env({})
    assert not settings.enrich.enabled
    assert "apps/v1/replicasets" in settings.enrich.resources and "v1/nodes" in settings.enrich.resources
    custom = Settings.from_env({"K8SEV_ENRICH_RESOURCES": "v1/pods, example.com/v1alpha1/widgets"})
    assert custom.enrich.resources == ("v1/pods", "example.com/v1alpha1/widgets")
    with pytest.raises(SettingsError) as caught:
        Settings.from_env(
            {
                "K8SEV_ENRICH_RESOURCES": "pods,apps/v1/Deployments",
                "K8SEV_ENRICH_LABELS": "app,bad key",
                "K8SEV_ENRICH_CACHE_SIZE": "0",
            }
        )
    problems = "\n".join(caught.value.problems)
    assert "K8SEV_ENRICH_RESOURCES=" in problems and "'pods'" in problems and "'Deployments'" in problems
    assert "K8SEV_ENRICH_LABELS=" in problems and "'bad key'" in problems
    assert "K8SEV_ENRICH_CACHE_SIZE=" in problems
