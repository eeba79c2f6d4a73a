"""Contract test: a real `reconciler serve` on example-repo, with one real Envoy connected, answers
Kuma's paths with the shapes of Kuma v2.14.3's OpenAPI description (the expectations in
contract.py, written by hand from the spec), pages its lists the way Kuma does, and answers
errors and writes in Kuma's error shape.

A path the control plane does not serve fails here: that is what the test is for.
"""

from __future__ import annotations

import random
import socket
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qs, urlsplit

import jsonschema
import pytest
import yaml

from reconciler.demo_ports import PLAN_SPAN, move_ports_in_yaml
from tests.api.kuma.contract import PLURALS, Expectation, error, expectations, listing
from tests.api.kuma.contract_inspect import INBOUND_POLICIES, LAYOUT, POLICIES_LIST, ROUTES_LIST
from tests.api.kuma.contract_kinds import ITEMS
from tests.api.kuma.contract_schema import GLOBAL_KINDS, SHORT_NAMES
from tests.api.support import Reply, request, served_control_plane
from tests.e2e.harness import REPO_ROOT, EnvoyProcess

pytestmark = pytest.mark.envoy

EXAMPLE = REPO_ROOT / "example-repo"
MESH = "default"
CONNECTED = "backend-v1"  # the dataplane that gets a real Envoy


def example_documents() -> list[dict[str, Any]]:
    return [doc for path in sorted(EXAMPLE.rglob("*.yaml")) for doc in yaml.safe_load_all(path.read_text()) if doc]


def example_names() -> dict[str, list[str]]:
    """The names of example-repo's resources, by kind."""
    names: dict[str, list[str]] = {}
    for doc in example_documents():
        names.setdefault(doc["type"], []).append(doc["name"])
    return {kind: sorted(found) for kind, found in names.items()}


NAMES = example_names()
EXPECTATIONS = expectations(NAMES, MESH, CONNECTED)


def _free_block() -> int:
    """A base for example-repo's port plan (reconciler demo's --base-port) whose whole block is
    free, in 6000-14999 like the demo's own test: the Envoy binds the plan's ports, and the
    example's own 15000-19999 may be taken by a demo or another test using example-repo."""
    bases = list(range(6000, 15000 - PLAN_SPAN + 1, 250))
    random.shuffle(bases)
    for base in bases:
        if all(_free(port) for port in range(base, base + PLAN_SPAN)):
            return base
    raise AssertionError("no free block of ports in 6000-14999 for example-repo's port plan")


def _free(port: int) -> bool:
    with socket.socket() as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


@dataclass(frozen=True)
class Served:
    api: str
    branch: str
    repository: str


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Served]:
    root = tmp_path_factory.mktemp("contract")
    base = _free_block()
    files = {str(p.relative_to(EXAMPLE)): move_ports_in_yaml(p.read_text(), base) for p in EXAMPLE.rglob("*.yaml")}
    with served_control_plane(root, files) as (remote, cp, first):
        envoy = EnvoyProcess(cp, root / "envoys", name=CONNECTED)
        envoy.start()
        try:
            cp.wait_applied(first, [f"{MESH}.{CONNECTED}"], timeout=60)
            yield Served(cp.api, remote.branch, str(remote.bare))
        finally:
            envoy.stop()


def violations(schema: Mapping[str, Any], document: Any) -> list[str]:
    """Where `document` breaks `schema`, one line each, by JSON path."""
    validator = jsonschema.Draft202012Validator(schema)
    found = sorted(validator.iter_errors(document), key=lambda e: list(map(str, e.absolute_path)))
    return [f"  at {e.json_path}: {e.message[:300]}" for e in found]


def get_json(served: Served, path: str, status: int = 200) -> Any:
    reply = request(served.api, "GET", path)
    assert reply.status == status, f"GET {path}: {reply.status}, wanted {status}: {reply.body[:500]!r}"
    assert reply.headers.get("content-type", "").startswith("application/json"), f"GET {path}: {reply.headers.get('content-type')}"
    return reply.json()


@pytest.mark.parametrize("expectation", EXPECTATIONS, ids=[e.path for e in EXPECTATIONS])
def test_each_path_answers_with_the_shape_of_kuma_openapi_description(served: Served, expectation: Expectation) -> None:
    document = get_json(served, expectation.path)
    broken = violations(expectation.schema, document)
    assert not broken, f"GET {expectation.path} does not match {expectation.component}:\n" + "\n".join(broken[:20])


def test_every_resource_of_example_repo_is_in_its_list(served: Served) -> None:
    """A list holds the repository's resources of its kind (Kuma's defaults may be there too)."""
    missing = {}
    for expectation in EXPECTATIONS:
        if not expectation.component.endswith("List"):
            continue
        kind = expectation.component.removeprefix("responses/").removesuffix("List")
        listed = {item["name"] for item in get_json(served, expectation.path + "?size=1000")["items"]}
        if lost := set(NAMES[kind]) - listed:
            missing[expectation.path] = sorted(lost)
    assert not missing, f"resources of example-repo missing from their lists: {missing}"


def _walk(served: Served, path: str, size: int) -> tuple[list[dict[str, Any]], list[Any]]:
    """Every page of a list, following `next` from `?size=`: (items, each page's next)."""
    items: list[dict[str, Any]] = []
    nexts: list[Any] = []
    url: str | None = f"{path}?size={size}"
    while url is not None:
        assert len(nexts) < 100, f"{path}: `next` never ends"
        page = get_json(served, url)
        assert "next" in page, f"GET {url}: no `next` (Kuma writes null on the last page)"
        assert len(page["items"]) <= size, f"GET {url}: {len(page['items'])} items on a page of {size}"
        items += page["items"]
        nexts.append(page["next"])
        if page["next"] is None:
            url = None
        else:
            link = urlsplit(page["next"])
            assert link.scheme in ("http", "https") and link.path == path, (
                f"GET {url}: next {page['next']!r} is not an absolute URL of {path}"
            )
            assert parse_qs(link.query).get("size") == [str(size)], f"GET {url}: next {page['next']!r} does not keep size={size}"
            assert "offset" in parse_qs(link.query), f"GET {url}: next {page['next']!r} has no offset"
            url = f"{link.path}?{link.query}"
    return items, nexts


@pytest.mark.parametrize(
    ("path", "kind"),
    [(f"/meshes/{MESH}/dataplanes", "Dataplane"), (f"/meshes/{MESH}/meshtrafficpermissions", "MeshTrafficPermission"), ("/meshes", "Mesh")],
)
def test_lists_page_with_size_offset_and_next_like_kuma(served: Served, path: str, kind: str) -> None:
    whole = get_json(served, path)
    assert not violations(listing(ITEMS[kind]), whole), violations(listing(ITEMS[kind]), whole)
    assert whole["total"] == len(whole["items"]) and whole["next"] is None, f"GET {path}: one page of {whole['total']}"

    items, nexts = _walk(served, path, size=2)
    names = [item["name"] for item in items]
    assert sorted(names) == sorted(item["name"] for item in whole["items"]), f"{path}: paging with size=2 gave {names}"
    assert len(set(names)) == len(names), f"{path}: an item on two pages: {names}"
    assert nexts[-1] is None and all(n is not None for n in nexts[:-1]), f"{path}: next per page {nexts}"

    beyond = get_json(served, f"{path}?size=2&offset={whole['total'] + 5}")
    assert (beyond["items"], beyond["next"], beyond["total"]) == ([], None, whole["total"]), beyond


def test_overview_list_pages_like_kuma(served: Served) -> None:
    path = f"/meshes/{MESH}/dataplanes/_overview"
    items, _ = _walk(served, path, size=4)
    assert sorted(item["name"] for item in items) == NAMES["Dataplane"]


def test_lists_filter_by_label_like_kuma(served: Served) -> None:
    """`filter[labels.<key>]=<value>` (the spec's `filter` parameter, as Kuma's server reads it)."""
    labelled = sorted(d["name"] for d in example_documents() if d["type"] == "Dataplane" and d.get("labels", {}).get("app") == "backend")
    assert len(labelled) >= 2  # example-repo runs two backend versions
    found = get_json(served, f"/meshes/{MESH}/dataplanes?filter%5Blabels.app%5D=backend")
    assert (sorted(i["name"] for i in found["items"]), found["total"]) == (labelled, len(labelled)), found
    none = get_json(served, f"/meshes/{MESH}/dataplanes?filter%5Blabels.app%5D=no-such-app")
    assert (none["items"], none["total"]) == ([], 0), none


def _assert_error(reply: Reply, status: int, what: str) -> dict[str, Any]:
    assert reply.status == status, f"{what}: {reply.status}, wanted {status}: {reply.body[:300]!r}"
    content_type = reply.headers.get("content-type", "")
    assert content_type.startswith(("application/json", "application/problem+json")), f"{what}: content-type {content_type}"
    body = reply.json()
    broken = violations(error(status), body)
    assert not broken, f"{what} is not Kuma's error (components/schemas/Error):\n" + "\n".join(broken)
    return body  # type: ignore[no-any-return]


NOT_FOUND = [
    f"/meshes/{MESH}/meshtimeouts/no-such-timeout",
    f"/meshes/{MESH}/dataplanes/no-such-dataplane",
    "/meshes/no-such-mesh",
    "/meshes/no-such-mesh/meshtrafficpermissions",
    "/zoneingresses/no-such-ingress",
    f"/meshes/{MESH}/dataplanes/no-such-dataplane/_overview",
    f"/meshes/{MESH}/dataplanes/no-such-dataplane/_rules",
    f"/meshes/{MESH}/meshtimeouts/no-such-timeout/_resources/dataplanes",
]


@pytest.mark.parametrize("path", NOT_FOUND)
def test_a_missing_resource_is_a_404_in_kuma_error_shape(served: Served, path: str) -> None:
    _assert_error(request(served.api, "GET", path), 404, f"GET {path}")


@pytest.mark.parametrize("query", ["size=many", "size=0", "size=1001"])
def test_a_bad_page_size_is_a_400_naming_the_parameter(served: Served, query: str) -> None:
    path = f"/meshes/{MESH}/meshtimeouts?{query}"
    body = _assert_error(request(served.api, "GET", path), 400, f"GET {path}")
    # Kuma: "Invalid page size" with invalid_parameters [{field: size, reason}].
    assert [p["field"] for p in body.get("invalid_parameters", [])] == ["size"], body


@pytest.mark.parametrize("view", ["_inbounds/invalid-kri/_policies", "_outbounds/invalid-kri/_policies", "_outbounds/invalid-kri/_routes"])
def test_a_view_by_an_invalid_kri_is_a_400(served: Served, view: str) -> None:
    path = f"/meshes/{MESH}/dataplanes/{CONNECTED}/{view}"
    _assert_error(request(served.api, "GET", path), 400, f"GET {path}")


def test_a_filter_on_anything_but_labels_is_a_400(served: Served) -> None:
    path = f"/meshes/{MESH}/dataplanes?filter%5Bname.app%5D=backend"
    body = _assert_error(request(served.api, "GET", path), 400, f"GET {path}")
    assert body.get("invalid_parameters"), body  # Kuma: "filters are only supported on labels"


WRITES = [
    ("PUT", f"/meshes/{MESH}/meshtimeouts/{NAMES['MeshTimeout'][0]}"),
    ("DELETE", f"/meshes/{MESH}/meshtimeouts/{NAMES['MeshTimeout'][0]}"),
    ("POST", f"/meshes/{MESH}/meshtimeouts/{NAMES['MeshTimeout'][0]}"),
    ("PUT", f"/meshes/{MESH}/dataplanes/{CONNECTED}"),
    ("PUT", f"/meshes/{MESH}"),
    ("DELETE", "/zoneingresses/" + NAMES["ZoneIngress"][0]),
]


@pytest.mark.parametrize(("method", "path"), WRITES, ids=[f"{m} {p}" for m, p in WRITES])
def test_a_write_is_a_405_in_kuma_error_shape(served: Served, method: str, path: str) -> None:
    body = {"type": "MeshTimeout", "mesh": MESH, "name": "x", "spec": {"targetRef": {"kind": "Mesh"}}}
    reply = request(served.api, method, path, body if method != "DELETE" else None)
    found = _assert_error(reply, 405, f"{method} {path}")
    where = (served.repository, f"branch {served.branch}")
    assert all(w in found["detail"] for w in where), f"{method} {path}: the refusal does not say where to commit: {found['detail']!r}"
    # HTTP: a 405 names the methods the resource allows.
    assert "GET" in reply.headers.get("allow", ""), f"{method} {path}: Allow {reply.headers.get('allow')!r}"
    # The resource is still there, unchanged by the refused write.
    assert request(served.api, "GET", path).status == 200


def test_the_contract_covers_every_kind_of_example_repo() -> None:
    """Every kind in example-repo has an item schema and a list and item path in the contract."""
    assert set(NAMES) <= set(ITEMS), f"kinds without an expectation: {set(NAMES) - set(ITEMS)}"
    components = {e.component for e in EXPECTATIONS}
    assert {f"schemas/{kind}Item" for kind in NAMES} <= components
    assert {f"responses/{kind}List" for kind in NAMES} <= components


def test_the_connected_proxy_is_online_with_acknowledged_responses(served: Served) -> None:
    """The dataplane with a real Envoy has an open subscription (no disconnectTime) whose
    listeners and clusters were acknowledged, and the global insight counts it online."""
    overview = get_json(served, f"/meshes/{MESH}/dataplanes/{CONNECTED}/_overview")
    open_streams = [s for s in overview["dataplaneInsight"]["subscriptions"] if "disconnectTime" not in s]
    assert len(open_streams) == 1, overview["dataplaneInsight"]
    status = open_streams[0]["status"]
    acknowledged = {t: int(status.get(t, {}).get("responsesAcknowledged", 0)) for t in ("cds", "lds", "total")}
    assert all(n >= 1 for n in acknowledged.values()), status
    insight = get_json(served, "/global-insight")
    assert insight["dataplanes"]["standard"]["online"] >= 1, insight["dataplanes"]


def test_resource_types_describe_every_kind_with_kuma_path_scope_and_short_name(served: Served) -> None:
    """`/_resources` is how Kuma's GUI and generated clients find each kind's path: every kind of
    example-repo is there with the path segment, scope and KRI short name Kuma uses."""
    described = {r["name"]: r for r in get_json(served, "/_resources")["resources"]}
    wrong = {}
    for kind in NAMES:
        want = {"path": PLURALS[kind], "scope": "Global" if kind in GLOBAL_KINDS else "Mesh", "shortName": SHORT_NAMES.get(kind, "")}
        got = {key: described.get(kind, {}).get(key) for key in want}
        if got != want:
            wrong[kind] = got
    assert not wrong, f"kinds described unlike Kuma (want path/scope/shortName as in Kuma's _resources): {wrong}"
    policies = [kind for kind in NAMES if "targetRef" in ITEMS[kind]["properties"].get("spec", {}).get("properties", {})]
    assert all(described[kind].get("policy", {}).get("isTargetRef") for kind in policies), {k: described[k].get("policy") for k in policies}


def _valid(served: Served, path: str, schema: Mapping[str, Any], component: str) -> Any:
    document = get_json(served, path)
    broken = violations(schema, document)
    assert not broken, f"GET {path} does not match {component}:\n" + "\n".join(broken[:20])
    return document


@pytest.mark.parametrize("name", NAMES["Dataplane"])
def test_per_proxy_views_by_kri_answer_with_kuma_shapes(served: Served, name: str) -> None:
    """Kuma 2.14's views of one proxy: its layout, then each inbound's policies, each
    outbound's policies and routes, and each route's policies, by the KRIs the layout and the
    routes give."""
    base = f"/meshes/{MESH}/dataplanes/{name}"
    layout = _valid(served, f"{base}/_layout", LAYOUT, "responses/DataplaneNetworkingLayoutResponse")
    assert layout["kri"] == f"kri_dp_{MESH}___{name}_", layout["kri"]
    for inbound in layout["inbounds"]:
        _valid(served, f"{base}/_inbounds/{inbound['kri']}/_policies", INBOUND_POLICIES, "responses/InboundPolicyConfResponse")
    for outbound in layout["outbounds"]:
        _valid(served, f"{base}/_outbounds/{outbound['kri']}/_policies", POLICIES_LIST, "responses/OutboundPolicyConfResponse")
        routes = _valid(served, f"{base}/_outbounds/{outbound['kri']}/_routes", ROUTES_LIST, "responses/RoutesListResponse")
        # Each route's policies, by the route's KRI (a TCP route's rule may carry none: Kuma writes "").
        for route in {rule["kri"] for conf in routes["routes"] for rule in conf["rules"] if rule.get("kri")}:
            path = f"{base}/_outbounds/{outbound['kri']}/_routes/{route}/_policies"
            _valid(served, path, POLICIES_LIST, "responses/RoutePolicyConfResponse")
