"""The Dockerfile's invariants, and the image's name everywhere. test_image.py builds and starts it."""

from __future__ import annotations

import fnmatch
import json
import re
import tomllib
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from streams.config.settings import Settings
from tests.deploy.helpers import (
    COMPOSE_FILE,
    DEPLOY_DOC,
    DOCKERFILE,
    K8S_DIR,
    ROOT,
    find,
    image_name,
    load_yaml,
)
from tests.fixtures.tools import kustomize_build

pytestmark = pytest.mark.deploy


@dataclass
class Stage:
    base: str
    name: str | None
    instructions: list[tuple[str, str]] = field(default_factory=list)

    def all(self, keyword: str) -> list[str]:
        return [args for kw, args in self.instructions if kw == keyword]


def parse() -> tuple[dict[str, str], list[Stage]]:
    """Global ARG defaults (resolved) and the stages, with line continuations joined and comments dropped."""
    text = re.sub(r"\\\n", " ", DOCKERFILE.read_text())
    args: dict[str, str] = {}

    def resolve(value: str) -> str:
        return re.sub(r"\$\{(\w+)\}", lambda m: args[m.group(1)], value)

    stages: list[Stage] = []
    for raw in text.splitlines():
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        keyword, _, rest = line.partition(" ")
        keyword, rest = keyword.upper(), rest.strip()
        if keyword == "FROM":
            base, _, name = rest.partition(" AS ")
            stages.append(Stage(base=resolve(base.strip()), name=name.strip() or None))
        elif stages:
            stages[-1].instructions.append((keyword, rest))
        elif keyword == "ARG":
            name, _, default = rest.partition("=")
            args[name] = resolve(default)
    return args, stages


def dockerignore() -> list[str]:
    lines = (ROOT / ".dockerignore").read_text().splitlines()
    return [line.strip() for line in lines if line.strip() and not line.startswith("#")]


def ignored(path: str) -> bool:
    """Docker's rule: the last matching pattern wins, ``!`` re-includes (patterns as .dockerignore uses them)."""
    verdict = False
    for pattern in dockerignore():
        negate = pattern.startswith("!")
        glob = pattern[1:] if negate else pattern
        glob = glob.rstrip("/")
        parts = Path(path).parts
        prefixes = ["/".join(parts[: i + 1]) for i in range(len(parts))]
        if glob.startswith("**/"):
            hit = any(fnmatch.fnmatch(p, glob[3:]) for p in parts)
        else:
            hit = any(fnmatch.fnmatch(prefix, glob) for prefix in prefixes)
        if hit:
            verdict = not negate
    return verdict


def test_multi_stage_build_on_slim_python_311() -> None:
    _, stages = parse()
    assert len(stages) >= 2
    build, runtime = stages[0], stages[-1]
    assert build.name == "build"
    assert re.fullmatch(r"python:3\.11-slim(-\w+)?", runtime.base), runtime.base
    # By default one python: image serves both stages; test_image.py passes Debian bases instead.
    assert build.base == runtime.base
    assert any("pip wheel" in run for run in build.all("RUN"))
    # The build stage installs its own wheels only, never from an index, into the venv the runtime
    # copies; the runtime itself runs no pip.
    (install,) = [run for run in build.all("RUN") if " install " in run]
    assert "--no-index" in install and "/opt/k8s-event-streams" in install
    assert not any("pip" in run for run in runtime.all("RUN"))
    assert "--from=build /opt/k8s-event-streams /opt/k8s-event-streams" in runtime.all("COPY")
    assert "PATH=/opt/k8s-event-streams/bin:$PATH" in " ".join(runtime.all("ENV"))


def test_runs_as_an_unprivileged_numeric_user_matching_the_deployment() -> None:
    _, stages = parse()
    users = stages[-1].all("USER")
    assert users, "the runtime stage sets no USER"
    uid, _, gid = users[-1].partition(":")
    assert uid.isdigit() and int(uid) != 0 and (not gid or int(gid) != 0)
    pod = find(kustomize_build(K8S_DIR), "Deployment")["spec"]["template"]["spec"]
    assert pod["securityContext"]["runAsUser"] == int(uid)
    assert pod["securityContext"]["runAsNonRoot"] is True


def test_entrypoint_is_the_worker_and_the_web_port_is_exposed() -> None:
    _, stages = parse()
    runtime = stages[-1]
    (entrypoint,) = runtime.all("ENTRYPOINT")
    argv = json.loads(entrypoint)
    assert argv == ["faust", "-A", "streams", "worker"] or argv[0] == "event-collector"
    exposed = {int(p.split("/")[0]) for line in runtime.all("EXPOSE") for p in line.split()}
    assert Settings.from_env({}).web.port in exposed


def test_data_dir_is_where_compose_and_kubernetes_mount_a_volume() -> None:
    _, stages = parse()
    env = " ".join(stages[-1].all("ENV"))
    match = re.search(r"K8SEV_DATA_DIR=(\S+)", env)
    assert match, "the image sets K8SEV_DATA_DIR"
    data_dir = match.group(1)
    container = find(kustomize_build(K8S_DIR), "Deployment")["spec"]["template"]["spec"]["containers"][0]
    assert data_dir in {m["mountPath"] for m in container["volumeMounts"]}
    worker = load_yaml(COMPOSE_FILE)["services"]["worker"]
    assert any(v.endswith(f":{data_dir}") for v in worker["volumes"])
    assert f"WORKDIR {data_dir}" in DOCKERFILE.read_text()


def test_the_build_copies_every_folder_the_package_is_built_from() -> None:
    _, stages = parse()
    sources: set[str] = set()
    for args in stages[0].all("COPY"):
        sources.update(args.split()[:-1])
    assert {"pyproject.toml", "README.md"} <= sources
    # agents/ and tables/ install as streams.agents and streams.tables: each mapped folder is copied.
    package_dirs = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]["package-dir"]
    assert set(package_dirs.values()) <= sources
    for source in sources:
        assert (ROOT / source).exists(), source
        assert not ignored(source), f"{source} is excluded by .dockerignore"


def test_the_dependency_layer_stubs_every_package_folder() -> None:
    """The dependencies' layer builds the metadata from empty folders: setuptools needs one for each
    package pyproject.toml lists, or that step fails."""
    _, stages = parse()
    (stub,) = [run for run in stages[0].all("RUN") if run.startswith("mkdir -p ")]
    created = {
        str(Path(*Path(d).parts[: i + 1])) for d in stub.split("&&")[0].split()[2:] for i in range(len(Path(d).parts))
    }
    setuptools = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]
    package_dirs: dict[str, str] = setuptools["package-dir"]
    for package in setuptools["packages"]:
        root = max((p for p in package_dirs if package == p or package.startswith(p + ".")), key=len)
        folder = Path(package_dirs[root], *package.removeprefix(root).split(".")[1:])
        assert str(folder) in created, f"{package} ({folder}) has no empty folder in the dependency layer"


def test_dockerignore_keeps_the_context_small() -> None:
    left_out = (
        ".venv/bin/python",
        ".git/config",
        "tests/conftest.py",
        "devstack/stack.py",
        "compose/docker-compose.yml",
    )
    for path in (*left_out, "streams/__pycache__/events.cpython-311.pyc"):
        assert ignored(path), f"{path} would be sent to the build"
    for path in ("pyproject.toml", "README.md", "streams/core/events.py", "agents/sink.py", "tables/counts.py"):
        assert not ignored(path), f"{path} is needed by the build"


def test_one_image_name_in_dockerfile_compose_kubernetes_and_docs() -> None:
    image = image_name()
    assert f"docker build -t {image} ." in DOCKERFILE.read_text()
    assert load_yaml(COMPOSE_FILE)["services"]["worker"]["image"] == image
    container = find(kustomize_build(K8S_DIR), "Deployment")["spec"]["template"]["spec"]["containers"][0]
    assert container["image"] == image
    doc = DEPLOY_DOC.read_text()
    assert f"docker build -t {image} ." in doc
    assert image in doc
