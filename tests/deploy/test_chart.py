"""deploy/helm/mesh-reconciler: with its defaults the chart renders deploy/kubernetes, object by
object; its values change what they name; every rendering is valid for the Kubernetes API.

`helm` itself is used when it is on PATH (`helm lint`, `helm template`); it is on neither PyPI,
npm nor Debian bookworm, so here the templates are rendered by tests/deploy/chart_render.py,
which supports only the subset the chart uses and refuses anything else.
"""

from __future__ import annotations

import shutil
import subprocess
from typing import Any

import pytest
import yaml

from tests.deploy.chart_render import UnsupportedTemplate, render_chart
from tests.deploy.support import CHART, container, expand_kubernetes_vars, parse_command, plain_objects
from tests.deploy.test_manifests import validate


def objects(rendered: dict[str, list[dict[str, Any]]]) -> dict[tuple[str, str], dict[str, Any]]:
    return {(o["kind"], o["metadata"]["name"]): o for docs in rendered.values() for o in docs}


def test_default_values_render_the_plain_manifests_object_by_object() -> None:
    """The Namespace is the one difference: Helm installs into a namespace (--create-namespace)."""
    plain = {key: obj for key, obj in plain_objects().items() if key[0] != "Namespace"}
    rendered = objects(render_chart(CHART))
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
    rendered = objects(render_chart(CHART, release="edge-cp", namespace="platform", values=values))
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
    assert config["RECONCILER_REPOSITORY"] == "ssh://git@git.internal/mesh.git"
    assert (config["RECONCILER_BRANCH"], config["RECONCILER_PATH"], config["RECONCILER_FETCH_INTERVAL"]) == (
        "production",
        "meshes/prod",
        "15",
    )
    # The certificate proxies check names the release's Service, wherever it is installed.
    _, params = parse_command(expand_kubernetes_vars(c["args"], config))
    assert (params["repo"], params["branch"], params["path"], params["fetch_interval"]) == (
        "ssh://git@git.internal/mesh.git",
        "production",
        "meshes/prod",
        15.0,
    )
    assert "edge-cp.platform.svc" in params["xds_tls_san"]


def test_service_monitor_and_network_policy_can_be_turned_off() -> None:
    rendered = render_chart(CHART, values={"serviceMonitor": {"enabled": False}, "networkPolicy": {"enabled": False}})
    assert rendered["servicemonitor.yaml"] == [] and rendered["networkpolicy.yaml"] == []
    assert {o["kind"] for docs in rendered.values() for o in docs} == {
        "ServiceAccount",
        "ConfigMap",
        "Deployment",
        "Service",
        "PodDisruptionBudget",
    }


def test_the_renderer_refuses_what_it_does_not_implement(tmp_path: Any) -> None:
    chart = tmp_path / "chart"
    (chart / "templates").mkdir(parents=True)
    shutil.copy(CHART / "Chart.yaml", chart)
    shutil.copy(CHART / "values.yaml", chart)
    (chart / "templates" / "cm.yaml").write_text('x: {{ include "name" . }}\n')
    with pytest.raises(UnsupportedTemplate):
        render_chart(chart)


@pytest.mark.skipif(
    shutil.which("helm") is None, reason="no helm binary: not on PyPI, npm or Debian bookworm (rendered by chart_render.py)"
)
def test_helm_lints_and_renders_the_chart_like_the_plain_manifests() -> None:
    subprocess.run(["helm", "lint", str(CHART)], check=True, capture_output=True, timeout=120)
    out = subprocess.run(
        ["helm", "template", "mesh-reconciler", str(CHART), "--namespace", "mesh-system"],
        check=True,
        capture_output=True,
        text=True,
        timeout=120,
    ).stdout
    rendered = {(o["kind"], o["metadata"]["name"]): o for o in yaml.safe_load_all(out) if o}
    assert rendered == {key: obj for key, obj in plain_objects().items() if key[0] != "Namespace"}
