"""Kubernetes-form repositories: policies are scoped by namespace as in Kuma v2.14.

One real git repository in Kubernetes form, served through the engine (the render path the
server, `plan` and `inspect` share). Three namespaces: `kuma-demo` and `other` each run a
`client` Dataplane (the same name in both) calling the MeshService `backend` of `payments`.

- The producer policy of `payments` (its `to` names its own `backend`) sets 9s on every
  client's calls to backend, whatever the client's namespace.
- The consumer policy of `kuma-demo` (its `to` names `backend` in `payments`) sets 7s on the
  calls of `kuma-demo`'s client only; it wins there over the producer policy (role order).
- The workload-owner policy of `kuma-demo` (`rules`) sets 33s on inbound traffic of
  `kuma-demo`'s dataplanes only.
- A system policy (namespace `kuma-system`) selects `{kind: Dataplane, name: client,
  namespace: kuma-demo}`: only that client gets its 44s idle timeout, not `other`'s client.
- A policy in `kuma-demo` naming `backend` without a namespace means `backend` of
  `kuma-demo`, which does not exist: it changes nothing (the 5s never shows).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from reconciler.kubernetes_identity import compute_policy_role
from reconciler.mesh.model import build_mesh_model
from reconciler.policies.core import namespace
from reconciler.policies.core.match import Destination, matched_policies, resolve
from reconciler.reconcile import Build, Engine
from reconciler.source.git import GitSource
from reconciler.views.proxy import policy_indexes
from reconciler.xds.resources import SHORT_NAMES, ProxyResources
from tests.support import GitRepo, snapshot_of_text

MESH = """\
apiVersion: kuma.io/v1alpha1
kind: Mesh
metadata:
  name: default
spec:
  skipCreatingInitialPolicies: [MeshCircuitBreaker, MeshRetry]
"""


def dataplane(name: str, namespace: str, address: str, service: str, outbound: bool) -> str:
    text = f"""\
apiVersion: kuma.io/v1alpha1
kind: Dataplane
metadata:
  name: {name}
  namespace: {namespace}
  labels:
    kuma.io/mesh: default
    app: {name}
spec:
  networking:
    address: {address}
    inbound:
      - port: 8080
        name: http
        servicePort: 18080
        tags:
          kuma.io/service: {service}
          kuma.io/protocol: http
"""
    if outbound:
        text += "    outbound:\n      - port: 10001\n        backendRef:\n          kind: MeshService\n          name: backend.payments\n          port: 80\n"
    return text


def timeout(name: str, namespace: str, body: str) -> str:
    return f"""\
apiVersion: kuma.io/v1alpha1
kind: MeshTimeout
metadata:
  name: {name}
  namespace: {namespace}
  labels:
    kuma.io/mesh: default
spec:
{body}"""


TO_BACKEND = """\
  targetRef:
    kind: Mesh
  to:
    - targetRef:
        kind: MeshService
        name: backend
{namespace}      default:
        http:
          requestTimeout: {timeout}
"""

FILES: dict[str, str | bytes | None] = {
    "mesh.yaml": MESH,
    "kuma-demo/client.yaml": dataplane("client", "kuma-demo", "10.0.0.1", "client_kuma-demo_svc", True),
    "other/client.yaml": dataplane("client", "other", "10.0.0.2", "client_other_svc", True),
    "payments/backend.yaml": dataplane("backend", "payments", "10.0.0.3", "backend_payments_svc_80", False),
    "payments/backend-service.yaml": """\
apiVersion: kuma.io/v1alpha1
kind: MeshService
metadata:
  name: backend
  namespace: payments
  labels:
    kuma.io/mesh: default
spec:
  selector:
    dataplaneTags:
      kuma.io/service: backend_payments_svc_80
  ports:
    - name: http
      port: 80
      targetPort: http
      appProtocol: http
""",
    "payments/producer.yaml": timeout("backend-producer", "payments", TO_BACKEND.format(namespace="", timeout="9s")),
    "kuma-demo/consumer.yaml": timeout(
        "backend-consumer", "kuma-demo", TO_BACKEND.format(namespace="        namespace: payments\n", timeout="7s")
    ),
    "kuma-demo/wrong-namespace.yaml": timeout("backend-here", "kuma-demo", TO_BACKEND.format(namespace="", timeout="5s")),
    "kuma-demo/inbound.yaml": timeout(
        "inbound",
        "kuma-demo",
        "  targetRef:\n    kind: Mesh\n  rules:\n    - default:\n        http:\n          requestTimeout: 33s\n",
    ),
    "kuma-system/one-client.yaml": timeout(
        "one-client",
        "kuma-system",
        "  targetRef:\n    kind: Dataplane\n    name: client\n    namespace: kuma-demo\n"
        "  to:\n    - targetRef:\n        kind: Mesh\n      default:\n        idleTimeout: 44s\n",
    ),
}

FILES["payments/route.yaml"] = """\
apiVersion: kuma.io/v1alpha1
kind: MeshHTTPRoute
metadata:
  name: backend-v2
  namespace: payments
  labels:
    kuma.io/mesh: default
spec:
  targetRef:
    kind: Mesh
  to:
    - targetRef:
        kind: MeshService
        name: backend
      rules:
        - matches:
            - path:
                type: PathPrefix
                value: /v2
          default:
            backendRefs:
              - kind: MeshService
                name: backend
                port: 80
                weight: 1
"""

FILES["payments/route-timeout.yaml"] = timeout(
    "backend-v2-timeout",
    "payments",
    "  targetRef:\n    kind: Mesh\n  to:\n    - targetRef:\n        kind: MeshHTTPRoute\n        name: backend-v2\n"
    "      default:\n        http:\n          requestTimeout: 3s\n",
)

DEMO, OTHER, BACKEND = "default.client.kuma-demo", "default.client.other", "default.backend.payments"


@pytest.fixture(scope="module")
def build(tmp_path_factory: pytest.TempPathFactory) -> Build:
    repo = GitRepo(Path(tmp_path_factory.mktemp("k8s")) / "config")
    repo.commit(FILES, "mesh in Kubernetes form")
    engine = Engine(GitSource(str(repo.path)))
    evaluation = engine.evaluate("HEAD")
    assert evaluation.report.valid, [str(p) for p in evaluation.report.errors]
    return engine.build(evaluation.snapshot, ())


def _resource(resources: ProxyResources, short: str, name: str) -> dict[str, Any]:
    found = [r.public_dict() for r in resources if SHORT_NAMES[r.type_url] == short and r.name == name]
    assert found, f"no {short} {name} in {sorted(r.name for r in resources)}"
    return found[0]


def _routes(listener: dict[str, Any]) -> list[dict[str, Any]]:
    hcm = listener["filterChains"][0]["filters"][0]["typedConfig"]
    routes: list[dict[str, Any]] = hcm["routeConfig"]["virtualHosts"][0]["routes"]
    return routes


def _route(listener: dict[str, Any]) -> dict[str, Any]:
    """The catch-all route's action."""
    route: dict[str, Any] = _routes(listener)[-1]["route"]
    return route


def outbound_timeout(build: Build, node: str) -> str:
    return str(_route(_resource(build.changed[node], "LDS", "outbound:127.0.0.1:10001")).get("timeout"))


def inbound_timeout(build: Build, node: str, address: str) -> str:
    return str(_route(_resource(build.changed[node], "LDS", f"inbound:{address}:8080")).get("timeout"))


def test_every_proxy_is_served_under_kumas_kubernetes_node_name(build: Build) -> None:
    assert {DEMO, OTHER, BACKEND} <= set(build.changed)


def test_a_consumer_policy_changes_the_proxies_of_its_namespace_only(build: Build) -> None:
    assert outbound_timeout(build, DEMO) == "7s"
    assert outbound_timeout(build, OTHER) != "7s"


def test_a_producer_policy_reaches_every_client_of_its_service(build: Build) -> None:
    # kuma-demo's own consumer policy is applied after it and wins there.
    assert outbound_timeout(build, OTHER) == "9s"


def test_a_name_without_namespace_means_the_policys_own_namespace(build: Build) -> None:
    assert "5s" not in (outbound_timeout(build, DEMO), outbound_timeout(build, OTHER))


def test_a_workload_owner_policy_applies_to_its_namespaces_dataplanes(build: Build) -> None:
    assert inbound_timeout(build, DEMO, "10.0.0.1") == "33s"
    assert inbound_timeout(build, OTHER, "10.0.0.2") != "33s"
    assert inbound_timeout(build, BACKEND, "10.0.0.3") != "33s"


def test_targetref_namespace_picks_the_dataplane_of_that_namespace(build: Build) -> None:
    def idle(node: str) -> Any:
        cluster = _resource(build.changed[node], "CDS", "default_backend.payments___msvc_80")
        options = cluster["typedExtensionProtocolOptions"]["envoy.extensions.upstreams.http.v3.HttpProtocolOptions"]
        return options.get("commonHttpProtocolOptions", {}).get("idleTimeout")

    assert idle(DEMO) == "44s"
    assert idle(OTHER) != "44s"


def test_a_producer_route_with_a_namespace_relative_backend_ref_reaches_every_client(build: Build) -> None:
    # The route's `backend` (targetRef and backendRef) is backend of payments, stored as
    # backend.payments: both clients route /v2 to its cluster, which has the backend endpoint.
    for node in (DEMO, OTHER):
        routes = _routes(_resource(build.changed[node], "LDS", "outbound:127.0.0.1:10001"))
        v2 = [r for r in routes if r["match"].get("prefix") == "/v2" or "/v2" in str(r["match"])]
        assert v2, routes
        assert v2[0]["route"].get("cluster") == "default_backend.payments___msvc_80", v2[0]["route"]
        endpoints = _resource(build.changed[node], "EDS", "default_backend.payments___msvc_80")
        addresses = [lb["endpoint"]["address"]["socketAddress"]["address"] for e in endpoints["endpoints"] for lb in e["lbEndpoints"]]
        assert addresses == ["10.0.0.3"]


def test_a_policy_aimed_at_a_namespaced_route_reaches_that_routes_rules_only(build: Build) -> None:
    # The route is stored as backend-v2.payments; the policy names it as written, `backend-v2`.
    for node in (DEMO, OTHER):
        routes = _routes(_resource(build.changed[node], "LDS", "outbound:127.0.0.1:10001"))
        v2 = [r for r in routes if "/v2" in str(r["match"])]
        assert v2 and all(r["route"].get("timeout") == "3s" for r in v2), v2
        assert routes[-1]["route"].get("timeout") != "3s", routes[-1]


# -- Kuma's matcher testdata, written in Universal form with Kuma's labels -------------------
def _index(text: str):  # type: ignore[no-untyped-def]
    model = build_mesh_model(snapshot_of_text(text).resources)
    return model, policy_indexes(model)["mesh-1"]


KUMA_DP_1 = """\
type: Mesh
name: mesh-1
skipCreatingInitialPolicies: ["*"]
---
type: Dataplane
mesh: mesh-1
name: dp-1
labels:
  k8s.kuma.io/namespace: {namespace}
networking:
  address: 1.1.1.1
  inbound:
    - port: 8080
      tags: {{kuma.io/service: web, version: v1}}
    - port: 8081
      tags: {{kuma.io/service: web, version: v3}}
"""


def _mtp(name: str, dp: str, namespace: str) -> str:
    return f"""\
type: MeshTrafficPermission
mesh: mesh-1
name: {name}
labels:
  k8s.kuma.io/namespace: kuma-system
  kuma.io/policy-role: system
spec:
  targetRef:
    kind: Dataplane
    name: {dp}
    namespace: {namespace}
  from:
    - targetRef:
        kind: Mesh
      default:
        action: Deny
"""


def test_kuma_dataplane_kind_select_by_name_and_namespace() -> None:
    # matchedpolicies/dataplane-kind/select-by-name-and-namespace (k8s-zone, uni-zone): only the
    # policy naming dp-1 in kuma-demo matches. Kuma's input names two policies mtp-2; here mtp-3.
    text = (
        KUMA_DP_1.format(namespace="kuma-demo")
        + "---\n"
        + "---\n".join([_mtp("mtp-1", "dp-1", "kuma-demo"), _mtp("mtp-2", "dp-1", "other-namespace"), _mtp("mtp-3", "dp-2", "kuma-demo")])
    )
    model, index = _index(text)
    dp = model.dataplanes["mesh-1.dp-1"]
    assert [m.resource.name for m in matched_policies("MeshTrafficPermission", dp, index)] == ["mtp-1"]


def _consumer_timeout(name: str, namespace: str, http: str) -> str:
    return f"""\
type: MeshTimeout
mesh: mesh-1
name: {name}
labels:
  k8s.kuma.io/namespace: {namespace}
  kuma.io/policy-role: consumer
spec:
  targetRef:
    kind: Mesh
  to:
    - targetRef:
        kind: MeshService
        name: backend
      default:
        http: {http}
"""


def test_kuma_torules_06_consumer_policies_of_another_namespace_do_not_apply() -> None:
    text = (
        KUMA_DP_1.format(namespace="test-ns")
        + "---\n"
        + "---\n".join(
            [
                _consumer_timeout("aaa", "test-ns", "{requestTimeout: 1s}"),
                _consumer_timeout("bbb", "test-ns", "{streamIdleTimeout: 3s}"),
                _consumer_timeout("ccc", "different-ns", "{requestTimeout: 3s, streamIdleTimeout: 3s}"),
            ]
        )
    )
    model, index = _index(text)
    conf = resolve("MeshTimeout", model.dataplanes["mesh-1.dp-1"], Destination("backend"), index)
    assert conf is not None
    assert dict(conf.value) == {"http": {"requestTimeout": "1s", "streamIdleTimeout": "3s"}}
    assert [c.policy.name for c in conf.origins] == ["bbb", "aaa"]


def test_a_dataplane_ref_with_only_a_namespace_selects_nothing() -> None:
    # Kuma selects every Dataplane only when name, namespace and labels are all unset.
    text = KUMA_DP_1.format(namespace="kuma-demo") + "---\n" + _mtp("mtp-1", "dp-1", "kuma-demo").replace("    name: dp-1\n", "")
    model, index = _index(text)
    assert matched_policies("MeshTrafficPermission", model.dataplanes["mesh-1.dp-1"], index) == ()


# -- the rules as pure functions --------------------------------------------------------------
@pytest.mark.parametrize(
    ("to", "role"),
    [
        ([{"targetRef": {"kind": "MeshHTTPRoute", "name": "r"}}], "producer"),
        ([{"targetRef": {"kind": "MeshService", "name": "b", "namespace": "payments"}}], "producer"),
        ([{"targetRef": {"kind": "MeshService", "labels": {"app": "b"}}}], "consumer"),
        ([{"targetRef": {"kind": "MeshExternalService", "name": "ext"}}], "consumer"),
    ],
)
def test_kumas_producer_items_are_named_meshservices_and_routes_of_the_own_namespace(to: list[dict[str, Any]], role: str) -> None:
    assert compute_policy_role({"to": to}, "payments", "kuma-system") == (role, None)


@pytest.mark.parametrize(
    ("role", "dp_labels", "in_scope"),
    [
        ("consumer", {"k8s.kuma.io/namespace": "kuma-demo"}, True),
        ("consumer", {"k8s.kuma.io/namespace": "other"}, False),
        ("consumer", {}, False),  # a Universal proxy is in no namespace
        ("workload-owner", {}, False),
        ("producer", {}, True),
        ("system", {"k8s.kuma.io/namespace": "other"}, True),
    ],
)
def test_which_proxies_each_role_reaches(role: str, dp_labels: dict[str, str], in_scope: bool) -> None:
    policy = {"k8s.kuma.io/namespace": "kuma-demo", "kuma.io/policy-role": role}
    assert namespace.dataplane_in_scope(policy, dp_labels) is in_scope


def test_a_role_label_without_a_namespace_keeps_reaching_every_proxy() -> None:
    # Universal repositories keep their behaviour (docs/policies.md, known differences).
    assert namespace.dataplane_in_scope({"kuma.io/policy-role": "consumer"}, {"k8s.kuma.io/namespace": "other"})
