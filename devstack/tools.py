"""Command-line tools the tests run, built from the Go module proxy like the servers: Helm, kustomize
and Prometheus's promtool.

They are not servers (nothing to start), so ``python -m devstack provision`` builds them after the
servers (``provision tools`` builds only them) and :func:`helm`/:func:`kustomize`/:func:`promtool`
return the cached binary, or raise :class:`StackError` naming the command that builds it.
"""

from __future__ import annotations

import logging
import time
from pathlib import Path

from devstack import gobuild
from devstack.errors import StackError
from devstack.gobuild import GoTool

log = logging.getLogger("devstack")

HELM_VERSION = "v3.22.0"
#: v5.8.3 asks for Go 1.27; v5.8.2 is the newest that builds with Go 1.26.
KUSTOMIZE_VERSION = "v5.8.2"
#: Prometheus publishes release 3.<minor>.<patch> as the Go module version v0.3<minor>.<patch>.
PROMETHEUS_VERSION = "v0.316.0"


def prometheus_release(module_version: str) -> str:
    """The Prometheus release a module version is (v0.316.0 -> 3.16.0), as promtool --version says it."""
    minor, patch = module_version.removeprefix("v0.").split(".")[:2]
    return f"{int(minor) // 100}.{int(minor) % 100}.{patch}"


def _helm_ldflags() -> str:
    """What Helm's Makefile stamps: its version, and the Kubernetes version of its client-go.

    The latter is the ``.Capabilities.KubeVersion`` of ``helm template`` and what ``helm lint`` checks
    deprecated APIs against; unstamped, Helm assumes Kubernetes 1.20.
    """
    flags = ["-s", "-w", f"-X helm.sh/helm/v3/internal/version.version={HELM_VERSION}"]
    flags.append("-X helm.sh/helm/v3/internal/version.gitTreeState=clean")
    client_go = gobuild.served_requirement(HELM, "k8s.io/client-go")
    if client_go:
        # client-go v0.<minor>.<patch> goes with Kubernetes 1.<minor>.
        minor = client_go.removeprefix("v").split(".")[1]
        for package in ("helm.sh/helm/v3/pkg/lint/rules", "helm.sh/helm/v3/pkg/chartutil"):
            flags += [f"-X {package}.k8sVersionMajor=1", f"-X {package}.k8sVersionMinor={minor}"]
    return " ".join(flags)


HELM = GoTool("helm", "helm.sh/helm/v3", HELM_VERSION, {"helm": "helm.sh/helm/v3/cmd/helm"}, _helm_ldflags)
KUSTOMIZE = GoTool(
    "kustomize",
    "sigs.k8s.io/kustomize/kustomize/v5",
    KUSTOMIZE_VERSION,
    {"kustomize": "sigs.k8s.io/kustomize/kustomize/v5"},
    lambda: f"-s -w -X sigs.k8s.io/kustomize/api/provenance.version=kustomize/{KUSTOMIZE_VERSION}",
)


def _promtool_ldflags() -> str:
    # What Prometheus's release build stamps (.promu.yml), so `promtool --version` names the release.
    release = prometheus_release(PROMETHEUS_VERSION)
    stamp = "-X github.com/prometheus/common/version"
    return f"-s -w {stamp}.Version={release} {stamp}.Branch=HEAD"


PROMTOOL = GoTool(
    "promtool",
    "github.com/prometheus/prometheus",
    PROMETHEUS_VERSION,
    {"promtool": "github.com/prometheus/prometheus/cmd/promtool"},
    _promtool_ldflags,
    # The rules' tests need no service discovery; without its plugins (cloud SDKs, client-go) the
    # first build compiles a fraction of the module graph.
    tags=("remove_all_sd",),
)
TOOLS = (HELM, KUSTOMIZE, PROMTOOL)


def provision() -> None:
    """Build every tool that is not in the cache yet."""
    for tool in TOOLS:
        started = time.monotonic()
        gobuild.build(tool.name, tool)
        log.info("provisioned %s in %.1fs", tool.name, time.monotonic() - started)


def helm() -> Path:
    return _binary(HELM)


def kustomize() -> Path:
    return _binary(KUSTOMIZE)


def promtool() -> Path:
    return _binary(PROMTOOL)


def _binary(tool: GoTool) -> Path:
    path = tool.bin_dir() / tool.name
    if not path.is_file():
        reason = f"{path} is not built; run `python -m devstack provision tools` (or `scripts/dev setup`)"
        raise StackError(tool.name, reason)
    return path
