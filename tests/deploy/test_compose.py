"""compose/docker-compose.yml agrees with the worker: services, ports, topics, index prefix, variables.

No Docker engine runs here; ``docker compose config`` runs when the Compose plugin is installed.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from typing import Any
from urllib.parse import urlsplit

import pytest

from streams.config.settings import Settings
from streams.search.template import index_template, template_name
from tests.deploy.helpers import COMPOSE_DIR, COMPOSE_FILE, DEPLOY_DOC, ROOT, defaults, image_name, load_yaml

pytestmark = pytest.mark.deploy

SERVICES = {"kafka", "kafka-setup", "elasticsearch", "kibana", "setup", "worker", "logstash"}
ONE_SHOT = {"kafka-setup", "setup"}
ELASTIC_IMAGES = ("docker.elastic.co/elasticsearch/", "docker.elastic.co/kibana/", "docker.elastic.co/logstash/")

# ${NAME}, ${NAME:-default}, ${NAME-default}: Compose's interpolation.
_INTERPOLATION = re.compile(r"\$\{(?P<name>[A-Za-z_][A-Za-z0-9_]*)(?:(?P<op>:?-)(?P<default>[^}]*))?\}")


@pytest.fixture(scope="module")
def compose() -> dict[str, Any]:
    spec: dict[str, Any] = load_yaml(COMPOSE_FILE)
    return spec


def interpolate(value: Any) -> str:
    """A value as Compose sees it with an empty environment: ``${X:-d}`` becomes ``d``."""
    return _INTERPOLATION.sub(lambda m: m.group("default") or "", str(value))


def environment(service: dict[str, Any]) -> dict[str, str]:
    env = service.get("environment") or {}
    if isinstance(env, list):
        env = dict(item.split("=", 1) for item in env)
    return {key: interpolate(value) for key, value in env.items()}


def worker_settings(compose: dict[str, Any]) -> Settings:
    """The worker's settings under compose; its kubeconfig exists only inside the container."""
    env = environment(compose["services"]["worker"])
    env.pop("K8SEV_KUBECONFIG")
    return Settings.from_env(env)


def published(service: dict[str, Any]) -> dict[int, str]:
    """container port -> host address:port, from ``[host_ip:]host_port:container_port`` entries."""
    out = {}
    for entry in service.get("ports", []):
        host, _, container = str(entry).rpartition(":")
        out[int(container)] = host
    return out


def mounts(service: dict[str, Any]) -> dict[str, str]:
    """target -> source of the service's volumes (short syntax)."""
    out = {}
    for entry in service.get("volumes", []):
        source, target, *_ = interpolate(entry).split(":")
        out[target] = source
    return out


def test_the_services_are_there(compose: dict[str, Any]) -> None:
    assert set(compose["services"]) == SERVICES


def test_images_are_pinned_and_the_elastic_stack_is_one_version(compose: dict[str, Any]) -> None:
    versions = {}
    for name, service in compose["services"].items():
        image = service["image"]
        repository, _, tag = image.rpartition(":")
        assert repository and re.fullmatch(r"\d+\.\d+\.\d+", tag), f"{name}: {image} is not pinned to x.y.z"
        if image.startswith(ELASTIC_IMAGES):
            versions[name] = tag
    assert set(versions) >= {"elasticsearch", "kibana", "logstash"}
    assert len(set(versions.values())) == 1, f"Elasticsearch, Kibana and Logstash differ: {versions}"
    assert compose["services"]["kafka"]["image"].startswith("apache/kafka:4.")


def test_long_running_services_have_health_checks_and_one_shots_do_not_restart(compose: dict[str, Any]) -> None:
    for name, service in compose["services"].items():
        if name in ONE_SHOT:
            assert service["restart"] == "no"
            assert "healthcheck" not in service
        else:
            assert service["healthcheck"]["test"], name
            assert service["restart"] == "unless-stopped"


def test_dependencies_wait_for_the_right_condition(compose: dict[str, Any]) -> None:
    services = compose["services"]
    for name, service in services.items():
        for dependency, spec in (service.get("depends_on") or {}).items():
            assert dependency in services, f"{name} depends on unknown {dependency}"
            if dependency in ONE_SHOT:
                assert spec["condition"] == "service_completed_successfully", (name, dependency)
            else:
                assert spec["condition"] == "service_healthy", (name, dependency)
                assert "healthcheck" in services[dependency]
    # Logstash writes only once the template is there and the topics have their partition count.
    assert set(services["logstash"]["depends_on"]) == {"kafka-setup", "setup"}
    assert "kafka-setup" in services["worker"]["depends_on"]


def test_every_k8sev_variable_is_a_worker_setting_with_its_default(compose: dict[str, Any]) -> None:
    known = defaults()
    text = COMPOSE_FILE.read_text()
    named = set(re.findall(r"\bK8SEV_[A-Z0-9_]+", text))
    assert named, "compose configures the worker through K8SEV_* variables"
    assert named <= set(known), f"not worker settings: {sorted(named - set(known))}"
    # An interpolation's fallback is the worker's own default, so an unset variable changes nothing.
    for match in _INTERPOLATION.finditer(text):
        if match.group("name").startswith("K8SEV_"):
            assert match.group("default") == known[match.group("name")], match.group(0)


def test_no_stray_dollar_that_compose_would_interpolate(compose: dict[str, Any]) -> None:
    uncommented = re.sub(r"(?m)(^|\s)#.*$", "", COMPOSE_FILE.read_text())
    text = _INTERPOLATION.sub("", uncommented)
    assert "$" not in text.replace("$$", ""), "a bare $ in compose is interpolated; write $$"


def test_worker_settings_are_valid_and_keep_the_default_names(compose: dict[str, Any]) -> None:
    worker = compose["services"]["worker"]
    settings = worker_settings(compose)
    default = Settings.from_env({})
    assert settings.kafka.raw_topic == default.kafka.raw_topic == "k8s-event"
    assert settings.kafka.clean_topic == default.kafka.clean_topic
    assert settings.kafka.dead_letter_topic == default.kafka.dead_letter_topic
    assert settings.search.index_prefix == default.search.index_prefix == "k8s-event"
    assert settings.kafka.topic_partitions == default.kafka.topic_partitions
    assert settings.app_id == default.app_id
    assert settings.search.engine == "elasticsearch"
    # The kubeconfig and the data directory are mounted where the settings say.
    env = environment(worker)
    volumes = mounts(worker)
    assert env["K8SEV_KUBECONFIG"] in volumes
    assert str(settings.data_dir) in volumes
    assert worker["read_only"] is True and "/tmp" in worker["tmpfs"]


def test_worker_image_port_and_health_check(compose: dict[str, Any]) -> None:
    worker = compose["services"]["worker"]
    settings = worker_settings(compose)
    assert worker["image"] == image_name()
    assert (COMPOSE_DIR / worker["build"]["context"] / worker["build"]["dockerfile"]).resolve() == ROOT / "Dockerfile"
    assert published(worker) == {settings.web.port: "127.0.0.1:6066"}
    assert f"127.0.0.1:{settings.web.port}/healthz" in " ".join(worker["healthcheck"]["test"])


def test_kafka_addresses_and_topics_match_the_worker(compose: dict[str, Any]) -> None:
    services = compose["services"]
    kafka = environment(services["kafka"])
    advertised = dict(
        (name, address)
        for name, _, address in (item.partition("://") for item in kafka["KAFKA_ADVERTISED_LISTENERS"].split(","))
    )
    internal = advertised[kafka["KAFKA_INTER_BROKER_LISTENER_NAME"]]
    settings = worker_settings(compose)
    assert settings.kafka.brokers == (f"kafka://{internal}",)
    assert environment(services["logstash"])["KAFKA_BOOTSTRAP_SERVERS"] == internal
    # The host listener is the published one.
    host_port = int(advertised["HOST"].rpartition(":")[2])
    assert host_port in published(services["kafka"])
    # kafka-setup creates exactly the worker's three topics, with its partitions and replicas.
    script = services["kafka-setup"]["command"][0]
    created = {}
    for line in script.strip().splitlines():
        args = line.split()
        assert args[args.index("--bootstrap-server") + 1] == internal
        created[args[args.index("--topic") + 1]] = (
            int(args[args.index("--partitions") + 1]),
            int(args[args.index("--replication-factor") + 1]),
        )
    expected = (settings.kafka.topic_partitions, settings.kafka.topic_replicas)
    assert created == dict.fromkeys(
        (settings.kafka.raw_topic, settings.kafka.clean_topic, settings.kafka.dead_letter_topic), expected
    )
    # One broker: internal topics need a replication factor of one.
    for key in ("KAFKA_OFFSETS_TOPIC_REPLICATION_FACTOR", "KAFKA_TRANSACTION_STATE_LOG_REPLICATION_FACTOR"):
        assert kafka[key] == "1"
    assert kafka["KAFKA_PROCESS_ROLES"] == "broker,controller", "KRaft, no ZooKeeper"
    assert "KAFKA_ZOOKEEPER_CONNECT" not in kafka


def test_search_engine_and_kibana_addresses(compose: dict[str, Any]) -> None:
    services = compose["services"]
    settings = worker_settings(compose)
    (url,) = settings.search.urls
    parts = urlsplit(url)
    assert parts.hostname == "elasticsearch" and parts.port == 9200
    assert 9200 in published(services["elasticsearch"])
    assert environment(services["logstash"])["ELASTICSEARCH_URL"] == url
    assert environment(services["setup"])["ELASTICSEARCH_URL"] == url
    assert environment(services["kibana"])["ELASTICSEARCH_HOSTS"] == url
    es = environment(services["elasticsearch"])
    assert es["discovery.type"] == "single-node"
    assert es["xpack.security.enabled"] == "false"
    assert 5601 in published(services["kibana"])
    assert environment(services["setup"])["KIBANA_URL"] == "http://kibana:5601"
    # Nothing is published beyond this machine.
    for name, service in services.items():
        for host in published(service).values():
            assert host.startswith("127.0.0.1:"), f"{name} publishes {host}"


def test_setup_loads_the_workers_template_and_imports_the_saved_objects(compose: dict[str, Any]) -> None:
    setup = compose["services"]["setup"]
    volumes = mounts(setup)
    for target, source in volumes.items():
        assert (COMPOSE_DIR / source).is_file(), f"{source} (mounted at {target}) is missing"
    script = (COMPOSE_DIR / volumes["/setup/setup.sh"]).read_text()
    assert setup["entrypoint"] == ["/bin/bash", "/setup/setup.sh"]
    settings = worker_settings(compose)
    # The same template, under the same name, as every worker installs at start.
    template = json.loads((COMPOSE_DIR / volumes["/setup/k8s-event-template.json"]).read_text())
    assert template == index_template(settings)
    assert f"/_index_template/{template_name(settings)}" in script
    assert "k8s-event-template.json" in script and "k8s-event.ndjson" in script
    assert "/api/saved_objects/_import?overwrite=true" in script
    assert volumes["/setup/k8s-event.ndjson"] == "./kibana/k8s-event.ndjson"


def test_logstash_reads_the_pipeline_with_the_workers_values(compose: dict[str, Any]) -> None:
    logstash = compose["services"]["logstash"]
    volumes = mounts(logstash)
    source = COMPOSE_DIR / volumes["/usr/share/logstash/pipeline"]
    assert sorted(p.name for p in source.iterdir()) == ["k8s-event.conf"]
    env = environment(logstash)
    worker_env = environment(compose["services"]["worker"])
    pipeline = (source / "k8s-event.conf").read_text()
    for name in set(re.findall(r"\$\{([A-Z0-9_]+):", pipeline)):
        if name.startswith("K8SEV_"):
            assert env[name] == worker_env[name], f"Logstash and the worker disagree on {name}"
        else:
            assert name in env, f"the pipeline reads {name}, compose does not set it"


def test_the_deploy_doc_starts_this_file() -> None:
    doc = DEPLOY_DOC.read_text()
    assert "docker compose -f compose/docker-compose.yml up" in doc


def test_docker_compose_config_accepts_the_file() -> None:
    """The Compose tool's own validation, where its plugin is installed (it needs no engine)."""
    docker = shutil.which("docker")
    if docker is None:
        pytest.skip("no docker client on this machine")
    probe = subprocess.run([docker, "compose", "version"], capture_output=True, text=True, check=False)
    if probe.returncode != 0:
        pytest.skip(f"the docker compose plugin is missing: {probe.stderr.strip()[:200]}")
    result = subprocess.run(
        [docker, "compose", "-f", str(COMPOSE_FILE), "config", "--quiet"],
        capture_output=True,
        text=True,
        check=False,
        env={"PATH": "/usr/bin:/bin:/usr/local/bin", "KUBECONFIG_FILE": str(COMPOSE_FILE)},
    )
    assert result.returncode == 0, result.stderr
