"""The worker's image, built here from the project's Dockerfile and started against the local stack.

No Docker engine: Debian's buildah builds the Dockerfile on Debian bases made by mmdebstrap
(:mod:`devstack.image`), and ``buildah run --isolation chroot`` starts the image's own entrypoint,
on the host's network, so the stack's loopback addresses work inside. Skipped only where buildah
cannot run; ``-s`` prints the figures docs/deploy.md reports.
"""

from __future__ import annotations

import base64
import json
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from elasticsearch import Elasticsearch
from kubernetes import client

from devstack import image as images
from devstack import scratch
from devstack.worker import Worker, unique_name, worker_env
from tests.deploy.helpers import ROOT, image_name
from tests.e2e.helpers import create_event, identity, wait_for_documents
from tests.fixtures.worker import TEST_SETTINGS

pytestmark = [pytest.mark.deploy, pytest.mark.stack, pytest.mark.slow]

TAG = f"localhost/{image_name()}"
#: Where the test's kubeconfig is mounted inside the container.
KUBE_DIR = "/run/k8sev-test"
BUILD_TOOLS = ("gcc", "cc", "c++", "g++", "make", "ld", "as", "pip", "pip3", "python3-config")


@dataclass
class Built:
    tag: str
    bases: images.Bases
    first_build: float
    first_reused: int
    second_build: float
    second_reused: int
    log: Path

    def figures(self) -> str:
        buildah = images.store()
        return (
            f"bases ({self.bases.source}) {self.bases.seconds:.1f}s; first build {self.first_build:.1f}s"
            f" ({self.first_reused} layers from cache), second {self.second_build:.1f}s"
            f" ({self.second_reused} from cache); {self.tag} {buildah.image_size(self.tag)}"
        )


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory) -> Built:
    reason = images.problem()
    if reason is not None:
        pytest.skip(reason)
    log = tmp_path_factory.mktemp("image") / "build.log"
    bases = images.debian_bases(log)
    first, first_reused = images.build(ROOT, TAG, bases, log)
    # Nothing changed in between: every step is a cached layer, what a rebuild costs at best.
    second, second_reused = images.build(ROOT, TAG, bases, log)
    result = Built(TAG, bases, first, first_reused, second, second_reused, log)
    print(f"\nimage: {result.figures()}; log {log}")
    return result


def in_image(built: Built, script: str) -> subprocess.CompletedProcess[str]:
    """``sh -c script`` in a fresh container of the image, as its user."""
    buildah = images.store()
    with buildah.container(built.tag) as container:
        argv = buildah.run_argv(container, ["sh", "-c", script])
        return subprocess.run(argv, capture_output=True, text=True, timeout=120, check=False)


def test_image_runs_as_its_unprivileged_user_and_holds_no_build_tools(built: Built) -> None:
    config = images.store().image_config(built.tag)
    assert config["User"] == "10001:10001"
    probe = in_image(
        built,
        "id -u; id -g; for t in " + " ".join(BUILD_TOOLS) + "; do command -v $t || true; done;"
        " ls -d /usr/include/python3* /usr/lib/gcc 2>/dev/null || true;"
        ' for m in pip setuptools wheel; do python3 -c "import $m" 2>/dev/null && echo module:$m; done;'
        " echo end",
    )
    assert probe.returncode == 0, probe.stderr
    uid, gid, *found = probe.stdout.split()
    assert (uid, gid) == ("10001", "10001"), "the effective ids inside are the image's USER"
    assert found == ["end"], f"build tools in the runtime image: {found[:-1]}"
    print(f"\nimage: uid {uid} gid {gid}; none of {', '.join(BUILD_TOOLS)}, headers, pip/setuptools/wheel")


def portable_kubeconfig(path: Path, into: Path) -> Path:
    """The stack's kubeconfig with its CA inlined, readable by the image's user: the container
    sees only the folder it is mounted from."""
    config: dict[str, Any] = json.loads(path.read_text())
    for entry in config["clusters"]:
        cluster = entry["cluster"]
        ca = cluster.pop("certificate-authority", None)
        if ca:
            cluster["certificate-authority-data"] = base64.b64encode(Path(ca).read_bytes()).decode()
    into.mkdir(mode=0o755, exist_ok=True)
    target = into / "kubeconfig"
    target.write_text(json.dumps(config))
    target.chmod(0o644)
    return into


@dataclass
class ImageWorker(Worker):
    """The worker as the image starts it: its ENTRYPOINT and CMD in a container of its own."""

    container: str = ""
    kube_dir: Path = Path()
    command: list[str] = field(default_factory=list)

    def start(self) -> None:
        inside = {k: v for k, v in self.env.items() if k.startswith("K8SEV_")}
        inside.pop("K8SEV_DATA_DIR")  # the image's own, owned by its user
        inside["K8SEV_KUBECONFIG"] = inside["KUBECONFIG"] = f"{KUBE_DIR}/kubeconfig"
        argv = images.store().run_argv(self.container, self.command, env=inside, volumes=[(self.kube_dir, KUBE_DIR)])
        self.log.parent.mkdir(parents=True, exist_ok=True)
        self.started_at = time.monotonic()
        with self.log.open("ab") as out:
            # One process group with what buildah starts inside: stop() signals the worker itself.
            self.proc = subprocess.Popen(
                argv, stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, start_new_session=True
            )


@pytest.fixture
def image_worker(built: Built, stack: dict[str, str], namespace: str, tmp_path: Path) -> Iterator[ImageWorker]:
    """The image's worker, not started yet, watching ``namespace`` only."""
    config = images.store().image_config(built.tag)
    name = unique_name("img")
    env = worker_env(stack, data_dir=tmp_path / name, name=name, **TEST_SETTINGS, K8SEV_NAMESPACES=namespace)
    buildah = images.store()
    with buildah.container(built.tag) as container:
        worker = ImageWorker(
            env=env,
            log=tmp_path / f"{name}.log",
            container=container,
            kube_dir=portable_kubeconfig(Path(stack["KUBECONFIG"]), tmp_path / "kube"),
            command=[*config["Entrypoint"], *config["Cmd"]],
        )
        try:
            yield worker
        finally:
            worker.stop()
            scratch.drop_app(stack, worker.app_id)


def test_the_images_entrypoint_becomes_ready_and_indexes_events(
    built: Built,
    image_worker: ImageWorker,
    kube_client: client.ApiClient,
    namespace: str,
    es_client: Elasticsearch,
    stack: dict[str, str],
) -> None:
    assert image_worker.command == ["faust", "-A", "streams", "worker", "--loglevel", "info"]
    image_worker.start()
    image_worker.wait_ready()
    ready_after = time.monotonic() - image_worker.started_at
    event = create_event(client.CoreV1Api(kube_client), namespace, "from-the-image", reason="ImageTested")
    created = time.monotonic()
    docs = wait_for_documents(es_client, image_worker, 1)
    assert [d["_id"] for d in docs] == [identity(event)]
    assert docs[0]["reason"] == "ImageTested"
    searchable_after = time.monotonic() - created

    # The archive's command line, from inside the image, against the same index.
    query = in_image(
        built,
        f"K8SEV_INDEX_PREFIX={image_worker.index_prefix} kubectl-eventlog --es-url"
        f" {stack['DEVSTACK_ELASTICSEARCH_URL']} -n {namespace} -o json",
    )
    assert query.returncode == 0, query.stderr
    assert "from-the-image" in query.stdout and "ImageTested" in query.stdout, query.stdout
    print(
        f"\nimage worker: ready {ready_after:.1f}s after start, event searchable {searchable_after:.1f}s"
        f" after its create; kubectl-eventlog inside the image found it"
    )
