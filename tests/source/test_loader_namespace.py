"""Kubernetes-form resources with `metadata.namespace`: the name, labels and policy role Kuma's
Kubernetes store and admission give them (docs/resources.md, "Kubernetes form")."""

from __future__ import annotations

import pytest

from reconciler.source.loader import load_file
from reconciler.types import ResourceKey
from tests.support import validate_text


def policy(namespace: str | None, to: str = "", from_: str = "", labels: str = "") -> bytes:
    ns = f"  namespace: {namespace}\n" if namespace is not None else ""
    body = "spec:\n  targetRef:\n    kind: Mesh\n" + to + from_
    return f"apiVersion: kuma.io/v1alpha1\nkind: MeshTimeout\nmetadata:\n  name: timeouts\n{ns}  labels:\n    kuma.io/mesh: default\n{labels}{body}".encode()


TO_BACKEND = "  to:\n    - targetRef:\n        kind: MeshService\n        name: backend\n      default:\n        idleTimeout: 20s\n"
TO_OTHER_NS = "  to:\n    - targetRef:\n        kind: MeshService\n        name: backend\n        namespace: payments\n      default:\n        idleTimeout: 20s\n"
TO_MESH = "  to:\n    - targetRef:\n        kind: Mesh\n      default:\n        idleTimeout: 20s\n"
FROM_MESH = "  from:\n    - targetRef:\n        kind: Mesh\n      default:\n        idleTimeout: 20s\n"


def test_the_namespace_joins_the_name_and_becomes_labels_as_in_kumas_kubernetes_store() -> None:
    [r] = load_file("t.yaml", policy("kuma-demo", TO_BACKEND)).resources
    assert r.key == ResourceKey("MeshTimeout", "default", "timeouts.kuma-demo")
    assert r.labels["k8s.kuma.io/namespace"] == "kuma-demo"
    assert r.labels["kuma.io/display-name"] == "timeouts"


def test_without_a_namespace_nothing_changes() -> None:
    [r] = load_file("t.yaml", policy(None, TO_BACKEND)).resources
    assert r.key == ResourceKey("MeshTimeout", "default", "timeouts")
    assert dict(r.labels) == {}


@pytest.mark.parametrize(
    ("namespace", "entries", "role"),
    [
        ("kuma-system", TO_BACKEND, "system"),
        ("kuma-demo", TO_BACKEND, "producer"),
        ("kuma-demo", TO_OTHER_NS, "consumer"),
        ("kuma-demo", TO_MESH, "consumer"),
        ("kuma-demo", FROM_MESH, "workload-owner"),
        ("kuma-demo", "", "workload-owner"),
    ],
)
def test_the_policy_role_is_computed_from_the_namespace_and_the_entries(namespace: str, entries: str, role: str) -> None:
    # A role label written by hand is replaced, as Kuma's admission replaces it.
    [r] = load_file("t.yaml", policy(namespace, entries, labels="    kuma.io/policy-role: system\n")).resources
    assert r.labels["kuma.io/policy-role"] == role


def test_the_system_namespace_is_a_setting(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("KUMA_STORE_KUBERNETES_SYSTEM_NAMESPACE", "mesh-control")
    [r] = load_file("t.yaml", policy("mesh-control", TO_OTHER_NS)).resources
    assert r.labels["kuma.io/policy-role"] == "system"
    [r] = load_file("t.yaml", policy("kuma-system", TO_OTHER_NS)).resources
    assert r.labels["kuma.io/policy-role"] == "consumer"


def test_mixing_producer_and_consumer_entries_is_refused_at_the_spec() -> None:
    result = load_file("t.yaml", policy("kuma-demo", TO_BACKEND + TO_MESH.replace("  to:\n", "")))
    assert result.resources == ()
    [problem] = result.problems
    assert (problem.line, problem.pointer) == (8, "/spec")
    assert "not allowed to mix producer and consumer items" in problem.message


def test_to_and_from_in_one_namespaced_policy_is_refused() -> None:
    result = load_file("t.yaml", policy("kuma-demo", TO_BACKEND, FROM_MESH))
    assert [p.message.split(" (")[0] for p in result.problems] == ["it's not allowed to mix 'to' and 'from' arrays in the same policy"]


def test_cluster_scoped_kinds_keep_their_name() -> None:
    doc = b"apiVersion: kuma.io/v1alpha1\nkind: Mesh\nmetadata:\n  name: default\n  namespace: kuma-system\n"
    [r] = load_file("m.yaml", doc).resources
    assert r.key == ResourceKey("Mesh", "", "default")


def test_a_display_name_label_already_set_is_kept() -> None:
    [r] = load_file("t.yaml", policy("kuma-demo", TO_BACKEND, labels="    kuma.io/display-name: shown\n")).resources
    assert r.labels["kuma.io/display-name"] == "shown"
    assert r.name == "timeouts.kuma-demo"


def test_a_namespace_that_is_not_a_string_is_located() -> None:
    result = load_file("t.yaml", policy("[a, b]", TO_BACKEND))
    assert [(p.line, p.pointer) for p in result.problems] == [(5, "/metadata/namespace")]


def _timeout_in(namespace: str | None, name: str = "timeouts") -> str:
    return policy(namespace, TO_MESH).decode().replace("name: timeouts", f"name: {name}")


def test_the_same_name_in_two_namespaces_is_two_resources() -> None:
    report = validate_text(_timeout_in("kuma-demo") + "---\n" + _timeout_in("other"))
    assert report.valid, [p.message for p in report.errors]


def test_the_same_name_twice_in_one_namespace_is_a_duplicate() -> None:
    first = _timeout_in("kuma-demo")
    report = validate_text(first + "---\n" + _timeout_in("kuma-demo"))
    name_line = first.count("\n") + 2 + 3  # the second document's metadata.name
    assert [(p.line, p.message.split(" is also")[0]) for p in report.errors] == [
        (name_line, "duplicate resource: MeshTimeout default/timeouts.kuma-demo")
    ]


def test_a_universal_name_with_the_namespace_suffix_is_the_same_resource() -> None:
    universal = "type: MeshTimeout\nmesh: default\nname: timeouts.kuma-demo\nspec:\n  targetRef:\n    kind: Mesh\n" + TO_MESH
    report = validate_text(_timeout_in("kuma-demo") + "---\n" + universal)
    assert len(report.errors) == 1 and "duplicate" in report.errors[0].message


def test_a_display_name_problem_is_reported_at_metadata_name() -> None:
    # Kuma limits a MeshService's display name to 63 characters; the namespace made
    # metadata.name the display name, so that is where the problem is.
    doc = f"apiVersion: kuma.io/v1alpha1\nkind: MeshService\nmetadata:\n  name: {'a' * 64}\n  namespace: payments\n  labels:\n    kuma.io/mesh: default\nspec:\n  ports:\n    - port: 80\n"
    report = validate_text(doc)
    assert [(p.line, p.pointer) for p in report.errors] == [(4, "/metadata/name")]
    assert "longer than 63 characters" in report.errors[0].message
