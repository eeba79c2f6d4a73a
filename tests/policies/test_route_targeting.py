"""Policies aimed at routes and at real MeshServices reach exactly what Kuma v2.14's do.

Issue 12 items 1–4, written from Kuma's matcher testdata (matchedpolicies/torules 01–03) and
resource-rule testdata (mt_with_mhr, mt_with_ms-sectionname, mt_with_ms-labels,
mt_with_ms-labels-sectionname), converted to our Universal inputs; each test says which.
The proxy's view is what the generator turns into Envoy config: an outbound's `confs` go to
its cluster and listener, each route's `confs` to that Envoy route.
"""

from __future__ import annotations

from typing import Any

from reconciler.mesh.model import build_mesh_model
from reconciler.policies.core.match import Destination, resolve
from reconciler.policies.core.route_rules import http_routes, route_conf
from reconciler.views.proxy import OutboundView, ProxyView, policy_indexes, proxy_views
from tests.support import snapshot_of_text, validate_text

# dp-1 (web, web-api) calls test-server and another-test-server by their kuma.io/service.
LEGACY = """\
type: Mesh
name: mesh-1
skipCreatingInitialPolicies: ["*"]
---
type: Dataplane
mesh: mesh-1
name: dp-1
networking:
  address: 1.1.1.1
  inbound:
    - port: 8080
      tags: {kuma.io/service: web, version: v1, team: mesh, kuma.io/protocol: http}
    - port: 8081
      tags: {kuma.io/service: web-api, version: v1, team: mesh, kuma.io/protocol: http}
  outbound:
    - port: 10001
      tags: {kuma.io/service: test-server}
    - port: 10002
      tags: {kuma.io/service: another-test-server}
---
type: Dataplane
mesh: mesh-1
name: servers
networking:
  address: 1.1.1.2
  inbound:
    - port: 8080
      tags: {kuma.io/service: test-server, kuma.io/protocol: http}
    - port: 8081
      tags: {kuma.io/service: another-test-server, kuma.io/protocol: http}
---
"""

ROUTE_1 = """\
type: MeshHTTPRoute
mesh: mesh-1
name: http-route-1
spec:
  targetRef: {kind: MeshService, name: web-api}
  to:
    - targetRef: {kind: MeshService, name: test-server}
      rules:
        - matches: [{path: {type: Exact, value: /}}]
          default: {}
    - targetRef: {kind: MeshService, name: another-test-server}
      rules:
        - matches: [{path: {type: PathPrefix, value: /v1}}, {method: POST}]
          default: {}
---
"""


def timeout(name: str, top: str, to: str, default: str, mesh: str = "mesh-1") -> str:
    return f"""\
type: MeshTimeout
mesh: {mesh}
name: {name}
spec:
  targetRef: {top}
  to:
    - targetRef: {to}
      default: {default}
---
"""


def view_of(text: str, node: str = "mesh-1.dp-1") -> ProxyView:
    report = validate_text(text)
    assert report.valid, [p.render() for p in report.errors]
    return proxy_views(build_mesh_model(snapshot_of_text(text).resources))[node]


def outbound(view: ProxyView, name: str) -> OutboundView:
    return next(o for o in view.outbounds if o.service_name == name or o.cluster_name == name)


def route_timeouts(o: OutboundView) -> dict[str, Any]:
    """Per Envoy route ("<path type> <path> [method]"): its request timeout, None when no MeshTimeout."""
    out = {}
    for r in o.routes:
        path = (
            r.match["path"].get("type", "PathPrefix")
            + " "
            + r.match["path"]["value"]
            + (" " + r.match["method"] if r.match.get("method") else "")
        )
        out[path] = ((r.confs.get("MeshTimeout") or {}).get("http") or {}).get("requestTimeout")
    return out


# -- item 1: top-level targetRef MeshHTTPRoute -----------------------------------------------
def test_torules_01_a_route_policy_reaches_that_routes_rules_only() -> None:
    view = view_of(
        LEGACY + ROUTE_1 + timeout("mtp-1", "{kind: MeshHTTPRoute, name: http-route-1}", "{kind: Mesh}", "{http: {requestTimeout: 3s}}")
    )
    test_server, another = outbound(view, "test-server"), outbound(view, "another-test-server")
    # Kuma's rules: 3s for the rule of each destination, nothing for the destination itself.
    assert route_timeouts(test_server) == {"Exact /": "3s", "PathPrefix /": None}
    assert route_timeouts(another) == {"PathPrefix /v1": "3s", "PathPrefix / POST": "3s", "PathPrefix /": None}
    assert "MeshTimeout" not in test_server.confs and "MeshTimeout" not in another.confs


def test_torules_02_rules_with_equal_matches_take_every_route_policy() -> None:
    route_2 = """\
type: MeshHTTPRoute
mesh: mesh-1
name: http-route-2
spec:
  targetRef: {kind: MeshService, name: web-api}
  to:
    - targetRef: {kind: MeshService, name: test-server}
      rules:
        - matches: [{path: {type: Exact, value: /}}]
          default: {}
---
"""
    text = (
        LEGACY
        + ROUTE_1
        + route_2
        + timeout("mtp-1", "{kind: MeshHTTPRoute, name: http-route-1}", "{kind: Mesh}", "{http: {requestTimeout: 1s}}")
        + timeout("mtp-2", "{kind: MeshHTTPRoute, name: http-route-2}", "{kind: Mesh}", "{http: {requestTimeout: 3s}}")
    )
    view = view_of(text)
    # Both routes' `/` rule is one rule: mtp-2 then mtp-1 (the smaller name is applied last).
    assert route_timeouts(outbound(view, "test-server")) == {"Exact /": "1s", "PathPrefix /": None}
    assert route_timeouts(outbound(view, "another-test-server")) == {
        "PathPrefix /v1": "1s",
        "PathPrefix / POST": "1s",
        "PathPrefix /": None,
    }
    model = build_mesh_model(snapshot_of_text(text).resources)
    index = policy_indexes(model)["mesh-1"]
    dp = model.dataplanes["mesh-1.dp-1"]
    (rule, _) = http_routes(dp, Destination("test-server"), index)
    conf = route_conf("MeshTimeout", dp, Destination("test-server"), index, rule)
    assert conf is not None and [c.policy.name for c in conf.origins] == ["mtp-2", "mtp-1"]


def test_torules_03_route_policy_merges_over_the_destinations_entries() -> None:
    route = ROUTE_1.replace("{kind: MeshService, name: web-api}", "{kind: Mesh}")
    text = (
        LEGACY
        + route
        + timeout("mtp-1", "{kind: MeshHTTPRoute, name: http-route-1}", "{kind: Mesh}", "{http: {requestTimeout: 1s}}")
        + timeout("mtp-3", "{kind: Mesh}", "{kind: MeshService, name: test-server}", "{http: {requestTimeout: 2s}}")
    )
    view = view_of(text)
    test_server = outbound(view, "test-server")
    # The rule's route: mtp-3 then mtp-1; the catch-all and the cluster: mtp-3 only.
    assert route_timeouts(test_server) == {"Exact /": "1s", "PathPrefix /": "2s"}
    assert test_server.confs["MeshTimeout"] == {"http": {"requestTimeout": "2s"}}
    catch_all = """\
type: MeshHTTPRoute
mesh: mesh-1
name: api-only
spec:
  targetRef: {kind: Mesh}
  to:
    - targetRef: {kind: MeshService, name: test-server}
      rules:
        - matches: [{path: {type: PathPrefix, value: /api}}]
          default: {}
---
"""
    view = view_of(text + catch_all)
    assert route_timeouts(outbound(view, "test-server")) == {"PathPrefix /api": "2s", "Exact /": "1s", "PathPrefix /": "2s"}


def test_a_route_policy_never_reaches_the_catch_all_route_or_the_cluster() -> None:
    """The issue's own example: a MeshTimeout of 60s aimed at route-1 must not override the
    mesh-wide 2s on the other routes to that service, nor its cluster and listener."""
    route = """\
type: MeshHTTPRoute
mesh: mesh-1
name: route-1
spec:
  targetRef: {kind: Mesh}
  to:
    - targetRef: {kind: MeshService, name: test-server}
      rules:
        - matches: [{path: {type: PathPrefix, value: /slow}}]
          default: {}
---
"""
    text = (
        LEGACY
        + route
        + timeout("mesh-wide", "{kind: Mesh}", "{kind: Mesh}", "{idleTimeout: 30s, http: {requestTimeout: 2s}}")
        + timeout("on-route-1", "{kind: MeshHTTPRoute, name: route-1}", "{kind: Mesh}", "{http: {requestTimeout: 60s}}")
    )
    view = view_of(text)
    test_server, another = outbound(view, "test-server"), outbound(view, "another-test-server")
    assert route_timeouts(test_server) == {"PathPrefix /slow": "60s", "PathPrefix /": "2s"}
    assert test_server.confs["MeshTimeout"] == {"idleTimeout": "30s", "http": {"requestTimeout": "2s"}}
    assert route_timeouts(another) == {"PathPrefix /": "2s"}
    # The route's own conf still carries the mesh-wide fields it does not set.
    slow = next(r for r in test_server.routes if r.match["path"]["value"] == "/slow")
    assert slow.confs["MeshTimeout"] == {"idleTimeout": "30s", "http": {"requestTimeout": "60s"}}


def test_a_route_policy_for_another_proxy_changes_nothing_here() -> None:
    text = LEGACY + ROUTE_1 + timeout("mtp-1", "{kind: MeshHTTPRoute, name: http-route-1}", "{kind: Mesh}", "{http: {requestTimeout: 3s}}")
    other = text.replace("kuma.io/service: web-api, version", "kuma.io/service: web-ui, version")
    view = view_of(other)
    assert route_timeouts(outbound(view, "test-server")) == {"PathPrefix /": None}


# -- real MeshServices: items 2, 3, 4 ---------------------------------------------------------
REAL = """\
type: Mesh
name: mesh-1
skipCreatingInitialPolicies: ["*"]
---
type: Dataplane
mesh: mesh-1
name: dp-1
networking:
  address: 1.1.1.1
  inbound:
    - port: 8080
      tags: {kuma.io/service: web, kuma.io/protocol: http}
  outbound:
    - port: 10001
      backendRef: {kind: MeshService, name: backend, port: 80}
    - port: 10002
      backendRef: {kind: MeshService, name: backend-dev, port: 80}
    - port: 10003
      backendRef: {kind: MeshService, name: backend-prod, port: 80}
    - port: 10004
      backendRef: {kind: MeshService, name: backend, port: 81}
---
type: Dataplane
mesh: mesh-1
name: backends
networking:
  address: 1.1.1.2
  inbound:
    - port: 8080
      name: main
      tags: {kuma.io/service: backend, app: backend, kuma.io/protocol: http}
---
type: MeshService
name: backend
mesh: mesh-1
spec:
  selector: {dataplaneTags: {app: backend}}
  ports:
    - {port: 80, targetPort: 8080, appProtocol: http, name: http-port}
    - {port: 81, targetPort: 8080, appProtocol: http}
---
type: MeshService
name: backend-dev
mesh: mesh-1
labels: {env: dev, domain: backend}
spec:
  selector: {dataplaneTags: {app: backend}}
  ports:
    - {port: 80, targetPort: 8080, appProtocol: http, name: http-port}
---
type: MeshService
name: backend-prod
mesh: mesh-1
labels: {env: prod, domain: backend}
spec:
  selector: {dataplaneTags: {app: backend}}
  ports:
    - {port: 80, targetPort: 8080, appProtocol: http, name: http-port}
---
"""


def timeouts_of(view: ProxyView) -> dict[str, Any]:
    return {
        o.outbound.backend_ref[1] + f":{o.outbound.backend_ref[2]}": o.confs.get("MeshTimeout")
        for o in view.outbounds
        if o.outbound.backend_ref
    }


def test_mt_with_ms_sectionname_names_a_port_by_its_name() -> None:
    policy = """\
type: MeshTimeout
name: matched-for-rules-mt-1
mesh: mesh-1
spec:
  targetRef: {kind: Mesh}
  to:
    - targetRef: {kind: MeshService, name: backend}
      default: {idleTimeout: 9s, connectionTimeout: 111s}
    - targetRef: {kind: MeshService, name: backend, sectionName: http-port}
      default: {connectionTimeout: 11s, http: {requestTimeout: 12s}}
---
"""
    confs = timeouts_of(view_of(REAL + policy))
    assert confs["backend:80"] == {"idleTimeout": "9s", "connectionTimeout": "11s", "http": {"requestTimeout": "12s"}}
    # Port 81 has no name: the section is not it, only the service-wide entry applies.
    assert confs["backend:81"] == {"idleTimeout": "9s", "connectionTimeout": "111s"}


def test_section_name_is_the_port_name_or_the_number_of_an_unnamed_port() -> None:
    policy = timeout("by-number", "{kind: Mesh}", "{kind: MeshService, name: backend, sectionName: '80'}", "{idleTimeout: 1s}")
    policy += timeout("unnamed", "{kind: Mesh}", "{kind: MeshService, name: backend, sectionName: '81'}", "{idleTimeout: 2s}")
    confs = timeouts_of(view_of(REAL + policy))
    # Kuma's Port.GetName: port 80 is named http-port, so "80" does not name it; 81 is unnamed.
    assert confs["backend:80"] is None
    assert confs["backend:81"] == {"idleTimeout": "2s"}


def test_mt_with_ms_labels_selects_only_the_labelled_meshservices() -> None:
    policy = timeout(
        "dev-only", "{kind: Mesh}", "{kind: MeshService, labels: {env: dev}}", "{idleTimeout: 10s, http: {requestTimeout: 12s}}"
    )
    confs = timeouts_of(view_of(REAL + policy))
    assert confs == {
        "backend:80": None,
        "backend-dev:80": {"idleTimeout": "10s", "http": {"requestTimeout": "12s"}},
        "backend-prod:80": None,
        "backend:81": None,
    }


def test_mt_with_ms_labels_sectionname() -> None:
    policy = """\
type: MeshTimeout
name: matched-for-rules-mt-1
mesh: mesh-1
spec:
  to:
    - targetRef: {kind: MeshService, labels: {domain: backend}, sectionName: http-port}
      default: {connectionTimeout: 31s, http: {requestTimeout: 32s}}
    - targetRef: {kind: MeshService, labels: {domain: backend}, sectionName: non-existent-section}
      default: {connectionTimeout: 41s, http: {requestTimeout: 42s}}
    - targetRef: {kind: MeshService, labels: {env: dev}, sectionName: http-port}
      default: {idleTimeout: 11s, connectionTimeout: 12s}
    - targetRef: {kind: MeshService, labels: {env: dev}, sectionName: non-existent-section}
      default: {idleTimeout: 21s, connectionTimeout: 22s}
---
"""
    confs = timeouts_of(view_of(REAL + policy))
    assert confs == {
        "backend:80": None,
        "backend-dev:80": {"connectionTimeout": "12s", "idleTimeout": "11s", "http": {"requestTimeout": "32s"}},
        "backend-prod:80": {"connectionTimeout": "31s", "http": {"requestTimeout": "32s"}},
        "backend:81": None,
    }


def test_labels_select_on_the_display_name_kuma_stores() -> None:
    policy = timeout(
        "by-display-name", "{kind: Mesh}", "{kind: MeshService, labels: {kuma.io/display-name: backend-prod}}", "{idleTimeout: 5s}"
    )
    confs = timeouts_of(view_of(REAL + policy))
    assert confs["backend-prod:80"] == {"idleTimeout": "5s"} and confs["backend-dev:80"] is None


REAL_ROUTE = """\
type: MeshHTTPRoute
name: http-route-1
mesh: mesh-1
spec:
  to:
    - targetRef: {kind: MeshService, name: backend}
      rules:
        - matches: [{path: {type: PathPrefix, value: /split}}]
          default:
            backendRefs: [{kind: MeshService, name: backend, port: 80}]
---
"""


def test_mt_with_mhr_a_to_entry_naming_a_route_configures_its_rules() -> None:
    policy = timeout("matched-for-rules-mt-1", "{kind: Mesh}", "{kind: MeshHTTPRoute, name: http-route-1}", "{http: {requestTimeout: 19s}}")
    view = view_of(REAL + REAL_ROUTE + policy)
    backend = outbound(view, "mesh-1_backend___msvc_80")
    assert route_timeouts(backend) == {"PathPrefix /split": "19s", "PathPrefix /": None}
    assert "MeshTimeout" not in backend.confs


def test_a_route_entry_merges_with_mesh_entries_but_not_the_meshservice_ones() -> None:
    """Kuma's resource rules: a route's rule merges the entries relevant to the route (Mesh and
    that route); the entry naming the MeshService configures the service and its other routes."""
    policy = """\
type: MeshTimeout
name: timeouts
mesh: mesh-1
spec:
  to:
    - targetRef: {kind: MeshHTTPRoute, name: http-route-1}
      default: {http: {streamIdleTimeout: 7s}}
    - targetRef: {kind: MeshService, name: backend}
      default: {http: {requestTimeout: 5s}}
    - targetRef: {kind: Mesh}
      default: {idleTimeout: 30s, http: {requestTimeout: 2s}}
---
"""
    view = view_of(REAL + REAL_ROUTE + policy)
    backend = outbound(view, "mesh-1_backend___msvc_80")
    split = next(r for r in backend.routes if r.match["path"]["value"] == "/split")
    assert split.confs["MeshTimeout"] == {"idleTimeout": "30s", "http": {"requestTimeout": "2s", "streamIdleTimeout": "7s"}}
    assert route_timeouts(backend) == {"PathPrefix /split": "2s", "PathPrefix /": "5s"}
    assert backend.confs["MeshTimeout"] == {"idleTimeout": "30s", "http": {"requestTimeout": "5s"}}


def test_a_route_entry_by_labels_names_the_labelled_routes() -> None:
    route = REAL_ROUTE.replace("name: http-route-1\n", "name: http-route-1\nlabels: {team: a}\n")
    policy = timeout("by-labels", "{kind: Mesh}", "{kind: MeshHTTPRoute, labels: {team: a}}", "{http: {requestTimeout: 4s}}")
    assert route_timeouts(outbound(view_of(REAL + route + policy), "mesh-1_backend___msvc_80")) == {
        "PathPrefix /split": "4s",
        "PathPrefix /": None,
    }
    other = timeout("other-team", "{kind: Mesh}", "{kind: MeshHTTPRoute, labels: {team: b}}", "{http: {requestTimeout: 4s}}")
    assert route_timeouts(outbound(view_of(REAL + route + other), "mesh-1_backend___msvc_80")) == {
        "PathPrefix /split": None,
        "PathPrefix /": None,
    }


def test_top_level_route_policies_do_nothing_for_real_meshservices() -> None:
    """Kuma's BuildToRules leaves top-level MeshHTTPRoute policies out of resource rules."""
    policy = timeout("deprecated-form", "{kind: MeshHTTPRoute, name: http-route-1}", "{kind: Mesh}", "{http: {requestTimeout: 3s}}")
    backend = outbound(view_of(REAL + REAL_ROUTE + policy), "mesh-1_backend___msvc_80")
    assert route_timeouts(backend) == {"PathPrefix /split": None, "PathPrefix /": None}
    assert "MeshTimeout" not in backend.confs


def test_legacy_rules_skip_a_policy_that_names_a_route_in_to() -> None:
    """Kuma's legacyBuildToRules: for kuma.io/service destinations such a policy is left out
    whole, its Mesh entries too."""
    route = ROUTE_1.replace("{kind: MeshService, name: web-api}", "{kind: Mesh}")
    policy = """\
type: MeshTimeout
name: new-form
mesh: mesh-1
spec:
  to:
    - targetRef: {kind: MeshHTTPRoute, name: http-route-1}
      default: {http: {requestTimeout: 3s}}
    - targetRef: {kind: Mesh}
      default: {idleTimeout: 9s}
---
"""
    view = view_of(LEGACY + route + policy)
    test_server = outbound(view, "test-server")
    assert route_timeouts(test_server) == {"Exact /": None, "PathPrefix /": None}
    assert "MeshTimeout" not in test_server.confs


def test_resolve_keeps_answering_for_destinations() -> None:
    text = REAL + timeout("dev", "{kind: Mesh}", "{kind: MeshService, labels: {env: dev}}", "{idleTimeout: 3s}")
    model = build_mesh_model(snapshot_of_text(text).resources)
    index = policy_indexes(model)["mesh-1"]
    dp = model.dataplanes["mesh-1.dp-1"]
    assert resolve("MeshTimeout", dp, Destination("backend-dev", "MeshService", 80, "http-port", {"env": "dev"}), index) is not None
    assert resolve("MeshTimeout", dp, Destination("backend-prod", "MeshService", 80, "http-port", {"env": "prod"}), index) is None


def test_a_route_backend_on_a_meshservice_port_takes_its_labels_and_section_entries() -> None:
    """A split backend naming a MeshService port is a real resource too: the entries that
    select it by labels or sectionName configure its cluster."""
    route = """\
type: MeshHTTPRoute
name: to-dev
mesh: mesh-1
spec:
  to:
    - targetRef: {kind: MeshService, name: backend}
      rules:
        - matches: [{path: {type: PathPrefix, value: /dev}}]
          default:
            backendRefs: [{kind: MeshService, name: backend-dev, port: 80}]
---
"""
    policy = timeout("dev", "{kind: Mesh}", "{kind: MeshService, labels: {env: dev}, sectionName: http-port}", "{idleTimeout: 10s}")
    backend = outbound(view_of(REAL + route + policy), "mesh-1_backend___msvc_80")
    (dev,) = backend.backends
    assert dev.name == "mesh-1_backend-dev___msvc_80"
    assert dev.confs["MeshTimeout"] == {"idleTimeout": "10s"}
    assert "MeshTimeout" not in backend.confs


def test_routes_to_a_real_meshservice_merge_in_resource_rule_order() -> None:
    """Equal matches from two routes: for a real MeshService the entry with a sectionName is
    applied after the one without (Kuma's resource rules), whatever the names; by name alone
    a-route would be applied last."""

    def split(name: str, ref: str, backend: str) -> str:
        return f"""\
type: MeshHTTPRoute
name: {name}
mesh: mesh-1
spec:
  to:
    - targetRef: {ref}
      rules:
        - matches: [{{path: {{type: PathPrefix, value: /x}}}}]
          default:
            backendRefs: [{{kind: MeshService, name: {backend}, port: 80}}]
---
"""

    text = REAL + split("z-route", "{kind: MeshService, name: backend, sectionName: http-port}", "backend-prod")
    text += split("a-route", "{kind: MeshService, name: backend}", "backend-dev")
    backend = outbound(view_of(text), "mesh-1_backend___msvc_80")
    (x, _) = backend.routes
    assert (x.origin, [c.name for c in x.clusters]) == ("z-route", ["mesh-1_backend-prod___msvc_80"])


def test_mt_with_mixed_targetrefs() -> None:
    """Kuma's resourcerules mt_with_mixed_targetrefs: http-route-1's rule takes the Mesh entry
    and its own (15s); http-route-2's rule, the catch-all and the cluster take the Mesh and
    MeshService entries (25s, idle 30s)."""

    def route(name: str, prefix: str) -> str:
        return f"""\
type: MeshHTTPRoute
name: {name}
mesh: mesh-1
spec:
  to:
    - targetRef: {{kind: MeshService, name: backend}}
      rules:
        - matches: [{{path: {{type: PathPrefix, value: {prefix}}}}}]
          default:
            backendRefs: [{{kind: MeshService, name: backend, port: 80, weight: 100}}]
---
"""

    policy = """\
type: MeshTimeout
name: matched-for-rules-mt-1
mesh: mesh-1
spec:
  to:
    - targetRef: {kind: MeshService, name: backend}
      default: {idleTimeout: 30s, http: {requestTimeout: 25s}}
    - targetRef: {kind: MeshHTTPRoute, name: http-route-1}
      default: {http: {requestTimeout: 15s}}
    - targetRef: {kind: Mesh}
      default: {connectionTimeout: 10s, http: {requestTimeout: 5s}}
---
"""
    backend = outbound(view_of(REAL + route("http-route-1", "/api") + route("http-route-2", "/admin") + policy), "mesh-1_backend___msvc_80")
    service = {"connectionTimeout": "10s", "idleTimeout": "30s", "http": {"requestTimeout": "25s"}}
    assert backend.confs["MeshTimeout"] == service
    confs = {r.match["path"]["value"]: r.confs["MeshTimeout"] for r in backend.routes}
    assert confs == {"/admin": service, "/api": {"connectionTimeout": "10s", "http": {"requestTimeout": "15s"}}, "/": service}
