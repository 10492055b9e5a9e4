"""Command-line tools the tests run, built from the Go module proxy like the servers: Helm and kustomize.

They are not servers (nothing to start), so ``python -m devstack provision`` builds them after the
servers (``provision tools`` builds only them) and :func:`helm`/:func:`kustomize` return the cached
binary, or raise :class:`StackError` naming the command that builds it.
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
TOOLS = (HELM, KUSTOMIZE)


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


def _binary(tool: GoTool) -> Path:
    path = tool.bin_dir() / tool.name
    if not path.is_file():
        reason = f"{path} is not built; run `python -m devstack provision tools` (or `scripts/dev setup`)"
        raise StackError(tool.name, reason)
    return path
