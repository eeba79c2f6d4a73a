"""deploy/helm/mesh-reconciler, rendered and linted by Helm itself: Helm v4's Go library, which
the PyPI package helm-python-sdk ships compiled (no `helm` binary is on PyPI, npm or Debian
bookworm; this is the same engine as `helm template` and `helm lint`, offline).

With its defaults the chart renders deploy/kubernetes object by object; its values change what
they name; every rendering is valid for the Kubernetes API.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import pytest
import yaml

from tests.deploy.support import CHART, KUBERNETES_VERSION, container, expand_kubernetes_vars, parse_command, plain_objects
from tests.deploy.test_manifests import validate

# Its wheels are per platform (a compiled library): where none installs, say so rather than fail to collect.
pytest.importorskip("helm_python", reason="helm-python-sdk (Helm's engine, a test extra on Linux) is not installed")
from helm_python import HelmRenderError, HelmValuesError
from helm_python.chart import Chart, lint


def render(
    values: Mapping[str, Any] | None = None, *, release: str = "mesh-reconciler", namespace: str = "mesh-system"
) -> dict[str, list[Any]]:
    """`helm template RELEASE deploy/helm/mesh-reconciler -n NAMESPACE`: each template's objects."""
    manifests = Chart.load(CHART).render(dict(values or {}), name=release, namespace=namespace, is_install=True)
    return {path.rsplit("/", 1)[1]: [o for o in yaml.safe_load_all(text) if o] for path, text in manifests.items()}


def objects(rendered: Mapping[str, list[dict[str, Any]]]) -> dict[tuple[str, str], dict[str, Any]]:
    return {(o["kind"], o["metadata"]["name"]): o for docs in rendered.values() for o in docs}


def test_helm_lint_finds_nothing_to_warn_about() -> None:
    report = lint(CHART, strict=True, kube_version=f"v{KUBERNETES_VERSION}")
    assert report["errors"] == []
    assert [m for m in report["messages"] if m["severity"] >= 2] == []


def test_default_values_render_the_plain_manifests_object_by_object() -> None:
    """The Namespace is the one difference: Helm installs into a namespace (--create-namespace)."""
    plain = {key: obj for key, obj in plain_objects().items() if key[0] != "Namespace"}
    rendered = objects(render())
    assert sorted(rendered) == sorted(plain)
    for key, obj in plain.items():
        assert rendered[key] == obj, f"{key}: the chart and deploy/kubernetes differ"


def test_values_set_replicas_image_repository_resources_and_secret_names() -> None:
    values = {
        "replicas": 5,
        "image": {"repository": "registry.internal/mesh-reconciler", "tag": "0.2.0"},
        "repository": "ssh://git@git.internal/mesh.git",
        "branch": "production",
        "path": "meshes/prod",
        "fetchInterval": 15,
        "resources": {"requests": {"cpu": "1", "memory": "1Gi"}, "limits": {"memory": "2Gi"}},
        "keysSecretName": "prod-keys",
        "gitCredentialsSecretName": "prod-git",
    }
    rendered = objects(render(values, release="edge-cp", namespace="platform"))
    for obj in rendered.values():
        validate(obj)
        assert obj["metadata"]["namespace"] == "platform"
    deployment = rendered[("Deployment", "edge-cp")]
    c = container(deployment)
    assert deployment["spec"]["replicas"] == 5
    assert c["image"] == "registry.internal/mesh-reconciler:0.2.0"
    assert c["resources"] == values["resources"]
    secrets = {v["name"]: v["secret"]["secretName"] for v in deployment["spec"]["template"]["spec"]["volumes"] if "secret" in v}
    assert secrets == {"keys": "prod-keys", "git-credentials": "prod-git"}
    config = rendered[("ConfigMap", "edge-cp")]["data"]
    _, params = parse_command(expand_kubernetes_vars(c["args"], config))
    assert (params["repo"], params["branch"], params["path"], params["fetch_interval"]) == (
        "ssh://git@git.internal/mesh.git",
        "production",
        "meshes/prod",
        15.0,
    )
    # The certificate proxies check names the release's Service, wherever it is installed.
    assert "edge-cp.platform.svc" in params["xds_tls_san"]


def test_service_monitor_and_network_policy_can_be_turned_off() -> None:
    rendered = render({"serviceMonitor": {"enabled": False}, "networkPolicy": {"enabled": False}})
    assert rendered["servicemonitor.yaml"] == [] and rendered["networkpolicy.yaml"] == []
    assert {o["kind"] for docs in rendered.values() for o in docs} == {
        "ServiceAccount",
        "ConfigMap",
        "Deployment",
        "Service",
        "PodDisruptionBudget",
    }


def test_the_network_policy_follows_its_values() -> None:
    policy = objects(render({"networkPolicy": {"monitoringNamespace": "observability", "meshNamespaceLabel": "example.com/mesh"}}))[
        ("NetworkPolicy", "mesh-reconciler")
    ]
    validate(policy)
    api, xds = policy["spec"]["ingress"]
    assert api["from"][1] == {"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "observability"}}}
    assert xds["from"] == [{"namespaceSelector": {"matchLabels": {"example.com/mesh": "enabled"}}}]


def test_a_broken_template_is_reported_by_helm(tmp_path: Any) -> None:
    """The render above is Helm's: a template error surfaces, it is not papered over."""
    import shutil

    chart = tmp_path / "mesh-reconciler"
    shutil.copytree(CHART, chart)
    (chart / "templates" / "broken.yaml").write_text("x: {{ .Values.replicas | nosuchfunction }}\n")
    with pytest.raises(HelmRenderError):
        Chart.load(chart).render({}, name="x", namespace="y")


@pytest.mark.parametrize(
    "values",
    [{"replicas": "three"}, {"dataplaneAuth": "token"}, {"fetchInterval": 0}, {"networkPolicy": {"enable": False}}],
    ids=["replicas not a number", "unknown dataplaneAuth", "fetchInterval 0", "misspelt networkPolicy key"],
)
def test_values_the_cli_would_refuse_are_refused_at_install(values: dict[str, Any]) -> None:
    """values.schema.json: Helm checks the values before rendering, not the pod at its start."""
    with pytest.raises(HelmValuesError):
        Chart.load(CHART).render(values, name="mesh-reconciler", namespace="mesh-system")
