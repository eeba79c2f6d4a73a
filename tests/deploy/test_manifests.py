"""deploy/kubernetes: every object is valid for the Kubernetes API, and the Deployment is the HA
layout docs/operations.md describes (3 spread replicas, hardened pods, probes on the real paths)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import kubernetes_validate
import pytest

from tests.deploy.servicemonitor import servicemonitor_problems
from tests.deploy.support import KUBERNETES_VERSION, MANIFESTS, container, load_objects, manifest_files, of_kind, plain_objects

ALL_FILES = [*manifest_files(), MANIFESTS / "secrets.example.yaml"]


def validate(obj: dict[str, Any]) -> None:
    """Against the API's OpenAPI schema (strict: an unknown field is an error); the ServiceMonitor
    (a CRD, no schema shipped offline) against its required fields and types by hand."""
    if obj["apiVersion"].startswith("monitoring.coreos.com/"):
        assert servicemonitor_problems(obj) == []
    else:
        kubernetes_validate.validate(obj, KUBERNETES_VERSION, strict=True)


@pytest.mark.parametrize("path", ALL_FILES, ids=lambda p: p.name)
def test_every_manifest_is_valid_for_the_kubernetes_api(path: Path) -> None:
    objects = load_objects(path)
    assert objects, f"{path.name} holds no object"
    for obj in objects:
        validate(obj)


def test_the_validation_would_catch_a_misspelt_field() -> None:
    deployment = of_kind(plain_objects(), "Deployment")
    container(deployment)["readinesProbe"] = container(deployment).pop("readinessProbe")
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(deployment, KUBERNETES_VERSION, strict=True)


def test_the_kustomization_applies_every_object_once_in_one_namespace() -> None:
    objects = plain_objects()
    assert sorted(k for k, _ in objects) == sorted(
        ["Namespace", "ServiceAccount", "ConfigMap", "Deployment", "Service", "PodDisruptionBudget", "NetworkPolicy", "ServiceMonitor"]
    )
    namespace = of_kind(objects, "Namespace")["metadata"]["name"]
    assert {o["metadata"].get("namespace") for (k, _), o in objects.items() if k != "Namespace"} == {namespace}


def test_three_replicas_spread_over_nodes_and_zones_and_two_stay_through_a_drain() -> None:
    objects = plain_objects()
    deployment = of_kind(objects, "Deployment")
    pod_labels = deployment["spec"]["template"]["metadata"]["labels"]
    pod = deployment["spec"]["template"]["spec"]
    assert deployment["spec"]["replicas"] == 3
    (anti,) = pod["affinity"]["podAntiAffinity"]["preferredDuringSchedulingIgnoredDuringExecution"]
    assert anti["podAffinityTerm"]["topologyKey"] == "kubernetes.io/hostname"
    assert anti["podAffinityTerm"]["labelSelector"]["matchLabels"].items() <= pod_labels.items()
    (spread,) = pod["topologySpreadConstraints"]
    assert spread["topologyKey"] == "topology.kubernetes.io/zone" and spread["maxSkew"] == 1
    pdb = of_kind(objects, "PodDisruptionBudget")
    assert pdb["spec"]["minAvailable"] == 2
    for selecting in (
        deployment["spec"]["selector"],
        pdb["spec"]["selector"],
        {"matchLabels": of_kind(objects, "Service")["spec"]["selector"]},
    ):
        assert selecting["matchLabels"].items() <= pod_labels.items()


def test_the_pod_runs_unprivileged_on_a_read_only_root() -> None:
    deployment = of_kind(plain_objects(), "Deployment")
    pod = deployment["spec"]["template"]["spec"]
    c = container(deployment)
    assert pod["securityContext"]["runAsNonRoot"] is True and pod["securityContext"]["runAsUser"] != 0
    assert pod["securityContext"]["seccompProfile"] == {"type": "RuntimeDefault"}
    assert c["securityContext"]["readOnlyRootFilesystem"] is True
    assert c["securityContext"]["allowPrivilegeEscalation"] is False
    assert c["securityContext"]["capabilities"] == {"drop": ["ALL"]}
    assert pod["automountServiceAccountToken"] is False
    # What serve writes (state, temp files) is on emptyDirs; the keys and the git token are read-only.
    mounts = {m["mountPath"]: m for m in c["volumeMounts"]}
    volumes = {v["name"]: v for v in pod["volumes"]}
    assert "emptyDir" in volumes[mounts["/var/lib/reconciler"]["name"]]
    assert "emptyDir" in volumes[mounts["/tmp"]["name"]]
    for path in ("/etc/reconciler/keys", "/etc/reconciler/git"):
        assert mounts[path]["readOnly"] is True
        assert "secret" in volumes[mounts[path]["name"]]


def test_probes_and_ports_match_the_service_and_the_network_policy() -> None:
    objects = plain_objects()
    c = container(of_kind(objects, "Deployment"))
    ports = {p["name"]: p["containerPort"] for p in c["ports"]}
    assert ports == {"xds": 5678, "api": 5681}
    assert c["readinessProbe"]["httpGet"] == {"path": "/readyz", "port": "api"}
    assert c["livenessProbe"]["httpGet"] == {"path": "/healthz", "port": "api"}
    assert c["startupProbe"]["httpGet"] == {"path": "/healthz", "port": "api"}
    service = of_kind(objects, "Service")
    assert {p["name"]: (p["port"], p["targetPort"]) for p in service["spec"]["ports"]} == {"xds": (5678, "xds"), "api": (5681, "api")}
    monitor = of_kind(objects, "ServiceMonitor")
    assert [(e["port"], e["path"]) for e in monitor["spec"]["endpoints"]] == [("api", "/metrics")]
    assert monitor["spec"]["selector"]["matchLabels"].items() <= service["metadata"]["labels"].items()
    policy = of_kind(objects, "NetworkPolicy")
    sources = {rule["ports"][0]["port"]: rule["from"] for rule in policy["spec"]["ingress"]}
    # The API: the pods of this namespace and the monitoring namespace, nobody else.
    assert sources[ports["api"]] == [
        {"podSelector": {}},
        {"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "monitoring"}}},
    ]
    # xDS: only namespaces labelled as in the mesh, never an empty (match-all) selector.
    assert all(s["namespaceSelector"]["matchLabels"] for s in sources[ports["xds"]])
    assert policy["spec"]["policyTypes"] == ["Ingress"]


def test_resources_leave_room_for_a_push_to_1000_proxies() -> None:
    """docs/performance.md: ~170 MiB steady with 1,000 proxies, up to ~230 MiB right after a push."""
    resources = container(of_kind(plain_objects(), "Deployment"))["resources"]
    assert resources["requests"]["memory"] == "256Mi"
    assert resources["limits"]["memory"] == "512Mi"
    assert resources["requests"]["cpu"] == "500m"


def test_the_servicemonitor_check_would_catch_a_missing_selector_or_a_misspelt_endpoint_field() -> None:
    monitor = of_kind(plain_objects(), "ServiceMonitor")
    del monitor["spec"]["selector"]
    monitor["spec"]["endpoints"][0]["pth"] = monitor["spec"]["endpoints"][0].pop("path")
    assert servicemonitor_problems(monitor) == [
        "spec.selector: required, with matchLabels or matchExpressions",
        "spec.endpoints[0].pth: unknown field",
    ]
