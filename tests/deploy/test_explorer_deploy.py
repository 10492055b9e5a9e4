"""The explorer's deployment pieces: the opt-in Ingress component, the vendored uPlot, the wheel's assets."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path
from typing import Any

import pytest
import yaml

from streams.config.settings import Settings
from tests.deploy.helpers import K8S_DIR, ROOT, find
from tests.fixtures.tools import kustomize_build

pytestmark = pytest.mark.deploy

COMPONENT = K8S_DIR / "components" / "explorer"


def render(tmp_path: Path) -> list[dict[str, Any]]:
    """k8s/ with the component, as docs/explorer.md's overlay has it, built by the project's kustomize."""
    overlay = tmp_path / "overlay"
    overlay.mkdir()
    spec = {"resources": [os.path.relpath(K8S_DIR, overlay)], "components": [os.path.relpath(COMPONENT, overlay)]}
    (overlay / "kustomization.yaml").write_text(yaml.safe_dump(spec))
    return kustomize_build(overlay)


def test_the_ingress_exposes_only_the_explorer_on_the_web_port(tmp_path: Path) -> None:
    objects = render(tmp_path)
    ingress = find(objects, "Ingress")
    service = find(objects, "Service")
    (rule,) = ingress["spec"]["rules"]
    (path,) = rule["http"]["paths"]
    assert (path["path"], path["pathType"]) == ("/ui", "Prefix")
    backend = path["backend"]["service"]
    assert backend["name"] == service["metadata"]["name"]
    assert backend["port"]["name"] in {p["name"] for p in service["spec"]["ports"]}


def test_the_component_makes_the_worker_demand_the_token_from_a_secret(tmp_path: Path) -> None:
    deployment = find(render(tmp_path), "Deployment")
    pod = deployment["spec"]["template"]["spec"]
    (worker,) = pod["containers"]
    env = {e["name"]: e.get("value") for e in worker["env"]}
    token_file = Path(env["K8SEV_EXPLORER_TOKEN_FILE"])
    mount = next(m for m in worker["volumeMounts"] if m["name"] == "explorer-token")
    assert token_file.parent == Path(mount["mountPath"]) and mount["readOnly"] is True
    volume = next(v for v in pod["volumes"] if v["name"] == "explorer-token")
    assert volume["secret"]["secretName"] == "k8s-event-streams-explorer"
    # The base's own mounts survive the patch.
    assert {"data", "tmp"} <= {m["name"] for m in worker["volumeMounts"]}
    # What the worker then reads: the Secret's file, as the setting expects it.
    secret = tmp_path / "token"
    secret.write_text("from-the-secret\n")
    assert Settings.from_env({"K8SEV_EXPLORER_TOKEN_FILE": str(secret)}).explorer.token == "from-the-secret"


def test_the_base_stays_without_the_explorer_ingress() -> None:
    base = (K8S_DIR / "kustomization.yaml").read_text()
    assert "explorer" not in base.split("resources:")[1]


def test_vendored_uplot_is_the_pinned_npm_release() -> None:
    if shutil.which("npm") is None:
        pytest.skip("npm is not installed: the offline checksum test (tests/unit) still holds")
    done = subprocess.run(
        [str(ROOT / "scripts" / "vendor-uplot"), "--check"], capture_output=True, text=True, timeout=300
    )
    assert done.returncode == 0, done.stdout + done.stderr


@pytest.mark.slow
def test_the_wheel_carries_the_page_and_its_assets(tmp_path: Path) -> None:
    subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "wheel",
            "-q",
            "--no-deps",
            "-w",
            str(tmp_path),
            str(ROOT),
        ],
        check=True,
        timeout=300,
    )
    (wheel,) = tmp_path.glob("*.whl")
    names = set(zipfile.ZipFile(wheel).namelist())
    for asset in (
        "index.html",
        "explorer.js",
        "explorer.css",
        "vendor/uplot/uPlot.iife.min.js",
        "vendor/uplot/LICENSE",
    ):
        assert f"streams/explorer/static/{asset}" in names
    entry_points = next(n for n in names if n.endswith("entry_points.txt"))
    scripts = zipfile.ZipFile(wheel).read(entry_points).decode()
    assert "kubectl-eventlog = streams.explorer.command:main" in scripts
