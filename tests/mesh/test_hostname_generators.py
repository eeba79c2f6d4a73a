"""HostnameGenerator rendering (reconciler/mesh/hostname_generators.py): which hostnames a
MeshService, MeshExternalService or MeshMultiZoneService gets, as the names its DNS answers."""

from __future__ import annotations

from reconciler.mesh.hostname_generators import DEFAULT_GENERATORS, generate_hostnames, generators_of
from reconciler.mesh.model import build_mesh_model
from reconciler.model import Resource
from tests.support import snapshot_of_text


def generator(name: str, template: str, selector: str = "meshService", labels: str = "") -> str:
    match = f"{{matchLabels: {{{labels}}}}}" if labels else "{}"
    return f"---\ntype: HostnameGenerator\nname: {name}\nspec:\n  selector:\n    {selector}: {match}\n  template: '{template}'\n"


def service(name: str, labels: str = "", kind: str = "MeshService", mesh: str = "default") -> str:
    spec = "  match: {type: HostnameGenerator, port: 443, protocol: tcp}\n  endpoints: [{address: a.example, port: 443}]\n"
    if kind != "MeshExternalService":
        spec = "  ports: [{port: 80, appProtocol: http}]\n"
    label_text = f"labels: {{{labels}}}\n" if labels else ""
    return f"---\ntype: {kind}\nmesh: {mesh}\nname: {name}\n{label_text}spec:\n{spec}"


def hostnames(text: str) -> dict[str, list[tuple[str, str]]]:
    """name → [(hostname, generator)] as `status.addresses` lists them."""
    model = build_mesh_model(snapshot_of_text(text).resources)
    return {name: [(a.hostname, a.generator) for a in found.hostnames.addresses] for (_, _, name), found in model.addresses.items()}


def test_kuma_defaults_name_every_committed_service() -> None:
    found = hostnames(service("billing") + service("httpbin", kind="MeshExternalService"))
    assert found == {
        "billing": [("billing.svc.mesh.local", "local-universal-mesh-service")],
        "httpbin": [("httpbin.extsvc.mesh.local", "local-mesh-external-service")],
    }
    # Kuma creates no default for MeshMultiZoneService on a zone.
    assert hostnames(service("everywhere", kind="MeshMultiZoneService")) == {"everywhere": []}


def test_template_fields_and_label_function() -> None:
    text = service("billing", "team: payments, kuma.io/display-name: bill") + generator(
        "by-team", '{{ label "team" }}.{{ .DisplayName }}.{{ .Name }}.{{ .Mesh }}.{{ .Zone }}{{ .Namespace }}.internal'
    )
    assert ("payments.bill.billing.default.default.internal", "by-team") in hostnames(text)["billing"]


def test_selector_picks_by_labels_and_kind() -> None:
    text = (
        service("billing", "team: payments")
        + service("orders", "team: shop")
        + service("httpbin", "team: payments", kind="MeshExternalService")
        + generator("payments", "{{ .Name }}.payments.local", labels="team: payments")
    )
    found = hostnames(text)
    assert ("billing.payments.local", "payments") in found["billing"]
    assert not any(g == "payments" for _, g in found["orders"] + found["httpbin"])


def test_a_committed_generator_replaces_the_default_of_its_name() -> None:
    text = service("billing") + generator("local-universal-mesh-service", "{{ .Name }}.mine")
    assert hostnames(text)["billing"] == [("billing.mine", "local-universal-mesh-service")]


def test_failures_and_collisions_set_a_condition_and_keep_the_other_addresses() -> None:
    resources = snapshot_of_text(
        service("a", "team: x")
        + service("b", "team: x")
        + generator("broken", '{{ label "missing" }}.local')
        + generator("same", "shared.local")
        + generator("upper", "{{ .Name }}.UPPER.local")
    ).resources
    found = generate_hostnames(generators_of(resources), [r for r in resources if r.type == "MeshService"])
    a, b = found[("MeshService", "default", "a")], found[("MeshService", "default", "b")]
    assert [x.hostname for x in a.addresses] == ["a.svc.mesh.local", "shared.local"]
    assert [x.hostname for x in b.addresses] == ["b.svc.mesh.local"]  # "a" took shared.local first (by name)
    conditions = {s.generator: (s.status, s.reason) for s in b.statuses}
    assert conditions == {
        "broken": ("False", "TemplateError"),
        "local-universal-mesh-service": ("True", "Generated"),
        "same": ("False", "Collision"),
        "upper": ("False", "TemplateError"),
    }
    broken = next(s for s in b.statuses if s.generator == "broken")
    assert "label missing not found" in broken.message
    upper = next(s for s in b.statuses if s.generator == "upper")
    assert "is not a valid DNS name" in upper.message


def test_same_hostname_in_two_meshes_is_no_collision() -> None:
    text = "type: Mesh\nname: other\n" + service("a") + service("b", mesh="other") + generator("flat", "svc.local")
    model = build_mesh_model(snapshot_of_text(text).resources)
    assert [a.hostname for a in model.addresses[("MeshService", "default", "a")].hostnames.addresses] == ["svc.local", "a.svc.mesh.local"]
    assert [a.hostname for a in model.addresses[("MeshService", "other", "b")].hostnames.addresses] == ["svc.local", "b.svc.mesh.local"]
    assert {r.name for r in model.dns["other"]} == {"b.svc.mesh.local", "svc.local"}


def test_kubernetes_form_name_and_namespace() -> None:
    ms = Resource.create(
        "MeshService",
        "billing.payments",
        {"ports": [{"port": 80}]},
        mesh="default",
        labels={"k8s.kuma.io/namespace": "payments", "kuma.io/display-name": "billing"},
    )
    custom = Resource.create("HostnameGenerator", "k8s", {"selector": {"meshService": {}}, "template": "{{ .Name }}.{{ .Namespace }}.svc"})
    found = generate_hostnames((*DEFAULT_GENERATORS, custom), [ms])[("MeshService", "default", "billing.payments")]
    assert [a.hostname for a in found.addresses] == ["billing.payments.svc", "billing.svc.mesh.local"]
