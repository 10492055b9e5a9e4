"""devstack's Go builds of the tools: the helper go.mod, the version stamps, and a clear error when unbuilt."""

from __future__ import annotations

from pathlib import Path

import pytest

from devstack import __main__ as cli
from devstack import gobuild, kube, stack, tools
from devstack.errors import StackError


@pytest.fixture(autouse=True)
def cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("DEVSTACK_CACHE", str(tmp_path))
    return tmp_path


def served(tool: gobuild.GoTool, text: str) -> None:
    mod = gobuild.download_dir(tool.module) / f"{tool.version}.mod"
    mod.parent.mkdir(parents=True)
    mod.write_text(text)


def test_the_helper_module_requires_the_tool_and_names_its_main_packages() -> None:
    gomod = gobuild.helper_gomod(tools.KUSTOMIZE, "module sigs.k8s.io/kustomize/kustomize/v5\n\ngo 1.26.0\n")
    assert "go 1.26.0" in gomod
    assert f"require sigs.k8s.io/kustomize/kustomize/v5 {tools.KUSTOMIZE_VERSION}" in gomod
    assert "tool sigs.k8s.io/kustomize/kustomize/v5" in gomod
    assert "replace" not in gomod
    # go build -o dir/ names a main package ending in /vN after the element before it.
    assert gobuild.exe_name("sigs.k8s.io/kustomize/kustomize/v5") == "kustomize"
    assert gobuild.exe_name("helm.sh/helm/v3/cmd/helm") == "helm"


def test_kubernetes_staging_modules_are_replaced_by_their_published_versions() -> None:
    gomod = gobuild.helper_gomod(kube.KUBERNETES, "go 1.25.0\nreplace k8s.io/api => ./staging/src/k8s.io/api\n")
    assert "\tk8s.io/api => k8s.io/api v0.35.4" in gomod


def test_helm_is_stamped_with_its_version_and_the_kubernetes_minor_of_its_client_go() -> None:
    served(tools.HELM, "module helm.sh/helm/v3\n\ngo 1.26.0\n\nrequire (\n\tk8s.io/client-go v0.37.0\n)\n")
    assert gobuild.served_requirement(tools.HELM, "k8s.io/client-go") == "v0.37.0"
    flags = tools.HELM.ldflags()
    assert f"-X helm.sh/helm/v3/internal/version.version={tools.HELM_VERSION}" in flags
    assert "-X helm.sh/helm/v3/pkg/chartutil.k8sVersionMinor=37" in flags
    assert "-X helm.sh/helm/v3/pkg/lint/rules.k8sVersionMajor=1" in flags


def test_promtool_is_built_from_the_prometheus_module_and_stamped_with_its_release() -> None:
    assert tools.prometheus_release("v0.316.0") == "3.16.0"
    assert tools.prometheus_release("v0.305.2") == "3.5.2"
    gomod = gobuild.helper_gomod(tools.PROMTOOL, "module github.com/prometheus/prometheus\n\ngo 1.26.7\n")
    assert f"require github.com/prometheus/prometheus {tools.PROMETHEUS_VERSION}" in gomod
    assert "tool github.com/prometheus/prometheus/cmd/promtool" in gomod
    assert gobuild.exe_name("github.com/prometheus/prometheus/cmd/promtool") == "promtool"
    release = tools.prometheus_release(tools.PROMETHEUS_VERSION)
    assert f"-X github.com/prometheus/common/version.Version={release}" in tools.PROMTOOL.ldflags()


def test_an_unbuilt_tool_is_an_error_that_says_how_to_build_it() -> None:
    with pytest.raises(
        StackError, match=r"helm: .*helm-v3\.22\.0/helm is not built; run `python -m devstack provision"
    ):
        tools.helm()
    with pytest.raises(StackError, match=r"kustomize: .* is not built"):
        tools.kustomize()
    with pytest.raises(StackError, match=r"promtool: .*promtool-v0\.\d+\.\d+/promtool is not built"):
        tools.promtool()


def test_provision_tools_builds_only_the_tools(cache: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    built: list[str] = []
    provisioned: list[object] = []
    monkeypatch.setattr(gobuild, "build", lambda server, tool: built.append(tool.name))
    monkeypatch.setattr(stack, "provision", provisioned.append)
    assert cli.main(["provision", "tools"]) == 0
    assert built == ["helm", "kustomize", "promtool"] and provisioned == []
    built.clear()
    assert cli.main(["provision", "kafka"]) == 0
    assert built == [] and len(provisioned) == 1
