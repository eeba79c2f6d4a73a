"""Kuma's resource paths on a real `reconciler serve` of example-repo (plus a second mesh that
keeps Kuma's default policies): every kind lists and reads in Kuma's shape with the fields the
YAML has, pages walk every item through `next`, Kuma's filters select, errors come in Kuma's
error shape, and only a changed resource gets a new modificationTime."""

from __future__ import annotations

import datetime
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from reconciler.api.kuma.descriptors import by_path, descriptors
from reconciler.kinds import all_kinds
from reconciler.mesh.hostname_generators import ADDRESS_KINDS
from tests.api.support import Reply, request
from tests.e2e.harness import ConfigRemote, ControlPlaneProcess

EXAMPLE_REPO = Path(__file__).resolve().parents[3] / "example-repo"
META = ("type", "mesh", "name", "creationTime", "modificationTime", "labels", "kri")

OTHER_MESH = """\
type: Mesh
name: other
"""
TWEAK = """\
type: MeshTimeout
name: tweak
mesh: other
spec:
  targetRef:
    kind: Mesh
  to:
    - targetRef:
        kind: Mesh
      default:
        idleTimeout: {idle}
"""


class Served:
    def __init__(self, remote: ConfigRemote, cp: ControlPlaneProcess) -> None:
        self.remote, self.cp = remote, cp

    def get(self, path: str, status: int = 200) -> Any:
        reply = request(self.cp.api, "GET", path)
        assert reply.status == status, f"GET {path}: {reply.status} {reply.body[:500]!r}"
        return reply.json()

    def walk(self, path: str) -> tuple[list[dict[str, Any]], list[int]]:
        """Every item of a list through its `next` links, and the `total` of each page."""
        items: list[dict[str, Any]] = []
        totals = []
        url: str | None = path
        while url is not None:
            page = self.get(url.removeprefix(self.cp.api))
            items += page["items"]
            totals.append(page["total"])
            url = page["next"]
        return items, totals


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Served]:
    root = tmp_path_factory.mktemp("kuma-resources")
    remote = ConfigRemote(root)
    files = {str(p.relative_to(EXAMPLE_REPO)): p.read_text() for p in EXAMPLE_REPO.rglob("*.yaml")}
    files["other/mesh.yaml"] = OTHER_MESH
    files["other/tweak.yaml"] = TWEAK.format(idle="1h")
    sha = remote.push(files, "example-repo")
    cp = ControlPlaneProcess(remote.bare, root / "state", dataplane_auth=False, xds_tls=False)
    cp.start()
    try:
        cp.wait_applied(sha)
        yield Served(remote, cp)
    finally:
        cp.stop()


def _example_documents() -> list[dict[str, Any]]:
    docs = []
    for path in sorted(EXAMPLE_REPO.rglob("*.yaml")):
        docs += [d for d in yaml.safe_load_all(path.read_text()) if d]
    return docs


def _path_of(doc: dict[str, Any]) -> tuple[str, str]:
    """(list path, item path) of a Universal document."""
    d = next(d for d in descriptors() if d.name == doc["type"])
    if d.global_scope:
        return f"/{d.path}", f"/{d.path}/{doc['name']}"
    mesh = doc.get("mesh", "default")
    return f"/meshes/{mesh}/{d.path}", f"/meshes/{mesh}/{d.path}/{doc['name']}"


def _rfc3339(text: str) -> datetime.datetime:
    assert text.endswith("Z"), text
    return datetime.datetime.fromisoformat(text)


def test_every_kind_the_reconciler_knows_has_kumas_path() -> None:
    assert {d.name for d in descriptors()} == set(all_kinds())
    assert by_path()["meshtlses"].name == "MeshTLS"
    assert by_path()["meshretries"].name == "MeshRetry"
    assert by_path()["meshproxypatches"].name == "MeshProxyPatch"
    assert by_path()["zone-ingresses"].name == "ZoneIngress"
    assert {d.name for d in descriptors() if d.global_scope} == {"Mesh", "ZoneIngress", "ZoneEgress", "HostnameGenerator"}


@pytest.mark.parametrize("doc", _example_documents(), ids=lambda d: f"{d['type']}/{d['name']}")
def test_example_resource_lists_and_reads_in_kumas_shape(served: Served, doc: dict[str, Any]) -> None:
    list_path, item_path = _path_of(doc)
    listed = served.get(list_path + "?size=1000")
    assert listed["total"] == len(listed["items"])
    assert doc["name"] in [i["name"] for i in listed["items"]]
    item = served.get(item_path)
    assert item == next(i for i in listed["items"] if i["name"] == doc["name"])
    d = next(d for d in descriptors() if d.name == doc["type"])
    assert item["type"] == doc["type"]
    assert item["name"] == doc["name"]
    if d.global_scope:
        assert "mesh" not in item
    else:
        assert item["mesh"] == doc.get("mesh", "default")
        assert item["labels"]["kuma.io/mesh"] == item["mesh"]
    assert doc.get("labels", {}).items() <= item.get("labels", {}).items()
    assert _rfc3339(item["creationTime"]) <= _rfc3339(item["modificationTime"])
    fields = {k: v for k, v in doc.items() if k not in ("type", "name", "mesh", "labels")}
    if d.flat:
        if doc["type"] == "Secret":  # never served: reads are open
            assert "data" in fields and "data" not in item
            fields.pop("data")
        assert {k: v for k, v in item.items() if k not in META} == fields
        assert "spec" not in fields
    else:
        assert item["spec"] == doc["spec"]
        status = item.get("status")
        if doc["type"] in ADDRESS_KINDS:  # plus the VIP and hostnames the control plane gives it
            status = dict(status or {})
            assert status.pop("vip" if doc["type"] == "MeshExternalService" else "vips")
            status.pop("addresses", None)
            status.pop("hostnameGenerators", None)
            status = status or None
        assert status == doc.get("status")
    if d.short_name:
        mesh, zone = item.get("mesh", ""), item.get("labels", {}).get("kuma.io/zone", "")
        assert item["kri"] == f"kri_{d.short_name}_{mesh}_{zone}__{doc['name']}_"
    else:
        assert "kri" not in item


def test_mesh_scoped_kinds_list_across_meshes_at_the_top_level(served: Served) -> None:
    everywhere = served.get("/meshtimeouts")
    meshes = {i["mesh"] for i in everywhere["items"]}
    assert meshes == {"default", "other"}
    per_mesh = served.get("/meshes/default/meshtimeouts")["total"] + served.get("/meshes/other/meshtimeouts")["total"]
    assert everywhere["total"] == per_mesh
    names = [(i["name"], i["mesh"]) for i in everywhere["items"]]
    assert names == sorted(names)


def test_kumas_default_policies_are_listed_for_a_mesh_that_keeps_them(served: Served) -> None:
    names = {i["name"]: i for i in served.get("/meshes/other/meshtimeouts")["items"]}
    assert {"mesh-timeout-all-other", "mesh-gateways-timeout-all-other", "tweak"} <= set(names)
    assert names["mesh-timeout-all-other"]["labels"] == {"kuma.io/mesh": "other"}
    assert names["mesh-timeout-all-other"]["kri"] == "kri_mt_other___mesh-timeout-all-other_"
    assert served.get("/meshes/other/meshretries/mesh-retry-all-other")["spec"]["to"][0]["targetRef"] == {"kind": "Mesh"}
    assert served.get("/meshes/other/meshcircuitbreakers")["total"] == 1
    # example-repo's mesh skips them ("*"): only what git has.
    assert "mesh-retry-all-default" not in {i["name"] for i in served.get("/meshes/default/meshretries")["items"]}


def test_pages_walk_every_item_through_next(served: Served) -> None:
    whole = served.get("/meshes/default/meshmetrics")
    assert whole["next"] is None and whole["total"] == 7
    items, totals = served.walk("/meshes/default/meshmetrics?size=2")
    assert [i["name"] for i in items] == [i["name"] for i in whole["items"]]
    assert totals == [7, 7, 7, 7]
    first = served.get("/meshes/default/meshmetrics?size=2")
    assert first["next"] == f"{served.cp.api}/meshes/default/meshmetrics?offset=2&size=2"
    all_dataplanes, _ = served.walk("/dataplanes?size=4")
    assert len(all_dataplanes) == 6
    assert served.get("/meshes/default/meshmetrics?size=5&offset=5")["items"] == whole["items"][5:]


def test_kumas_filters_select(served: Served) -> None:
    assert [i["name"] for i in served.get("/meshes/default/dataplanes?name=backend")["items"]] == ["backend-v1", "backend-v2"]
    by_label = served.get("/meshes/default/dataplanes?filter[labels.app]=frontend")["items"]
    assert [i["name"] for i in by_label] == ["frontend-1"]
    fuzzy_tag = served.get("/meshes/default/dataplanes?tag=kuma.io/service:back")["items"]
    assert [i["name"] for i in fuzzy_tag] == ["backend-v1", "backend-v2"]
    exact = served.get("/dataplanes?tag=kuma.io/service:backend&tag=version:v2")["items"]
    assert [i["name"] for i in exact] == ["backend-v2"]
    assert [i["name"] for i in served.get("/dataplanes?gateway=builtin")["items"]] == ["edge-gateway"]
    assert "edge-gateway" not in {i["name"] for i in served.get("/dataplanes?gateway=false")["items"]}
    proxy_label = served.get("/dataplanes?filter[labels.kuma.io/proxy-type]=gateway")["items"]
    assert [i["name"] for i in proxy_label] == ["edge-gateway"]
    assert served.get("/meshes/default/meshtimeouts?filter[labels.kuma.io/mesh]=other")["total"] == 0


def _assert_kuma_error(reply: Reply, status: int, title: str) -> dict[str, Any]:
    assert reply.status == status, reply.body
    body = reply.json()
    assert body["type"] == "/std-errors"
    assert (body["status"], body["title"]) == (status, title)
    assert body["detail"] == body["details"]
    assert re.fullmatch("[0-9a-f]{32}", body["instance"]), body
    return body  # type: ignore[no-any-return]


def test_unknown_mesh_kind_or_name_is_kumas_404(served: Served) -> None:
    api = served.cp.api
    assert _assert_kuma_error(request(api, "GET", "/meshes/nope/meshtimeouts"), 404, "Failed to retrieve Mesh")["detail"] == "Not found"
    _assert_kuma_error(request(api, "GET", "/meshes/nope/meshtimeouts/x"), 404, "Failed to retrieve Mesh")
    _assert_kuma_error(request(api, "GET", "/meshes/default/meshtimeouts/nope"), 404, "Could not retrieve a resource")
    _assert_kuma_error(request(api, "GET", "/meshes/nope"), 404, "Could not retrieve a resource")
    _assert_kuma_error(request(api, "GET", "/zoneingresses/nope"), 404, "Could not retrieve a resource")
    _assert_kuma_error(request(api, "GET", "/meshes/default/meshbogus"), 404, "Not found")
    _assert_kuma_error(request(api, "GET", "/meshes/default/zoneingresses"), 404, "Not found")  # a global kind


def test_bad_parameters_are_kumas_400(served: Served) -> None:
    api = served.cp.api
    for size, reason in (("abc", "invalid format"), ("0", "must be greater than 0"), ("1001", "Maximum page size is 1000")):
        body = _assert_kuma_error(request(api, "GET", f"/meshes/default/meshtimeouts?size={size}"), 400, "Could not retrieve resources")
        assert body["detail"] == "Invalid page size"
        assert body["invalid_parameters"][0]["field"] == "size" and reason in body["invalid_parameters"][0]["reason"]
    body = _assert_kuma_error(request(api, "GET", "/dataplanes?gateway=maybe"), 400, "Could not retrieve resources")
    assert body["invalid_parameters"][0]["field"] == "gateway"
    body = _assert_kuma_error(request(api, "GET", "/meshes/default/meshtimeouts?filter[spec.x]=1"), 400, "Could not retrieve resources")
    assert body["invalid_parameters"] == [{"field": "filter[spec.x]", "reason": "filters are only supported on labels", "source": "query"}]
    _assert_kuma_error(request(api, "GET", "/meshes/default/meshtimeouts?offset=-1"), 400, "Could not retrieve resources")


def test_head_answers_like_get_without_a_body(served: Served) -> None:
    reply = request(served.cp.api, "HEAD", "/meshes/default/meshtimeouts")
    assert reply.status == 200 and reply.body == b""
    assert reply.headers["content-type"].startswith("application/json")


def test_only_a_changed_resource_gets_a_new_modification_time(served: Served) -> None:
    before_tweak = served.get("/meshes/other/meshtimeouts/tweak")
    before_mesh = served.get("/meshes/other")
    before_default = served.get("/meshes/other/meshtimeouts/mesh-timeout-all-other")
    sha = served.remote.push({"other/tweak.yaml": TWEAK.format(idle="2h")}, "tweak idle timeout")
    served.cp.wait_applied(sha)
    after_tweak = served.get("/meshes/other/meshtimeouts/tweak")
    assert after_tweak["spec"]["to"][0]["default"]["idleTimeout"] == "2h"
    assert after_tweak["creationTime"] == before_tweak["creationTime"]
    assert _rfc3339(after_tweak["modificationTime"]) > _rfc3339(before_tweak["modificationTime"])
    assert served.get("/meshes/other") == before_mesh
    assert served.get("/meshes/other/meshtimeouts/mesh-timeout-all-other") == before_default


def test_zone_proxies_have_overviews_without_subscriptions(served: Served) -> None:
    [ingress] = served.get("/zoneingresses/_overview")["items"]
    assert ingress["type"] == "ZoneIngressOverview" and ingress["name"] == "zone-ingress-1"
    assert ingress["zoneIngress"]["networking"]["port"] == 17001
    assert ingress["zoneIngressInsight"] == {"subscriptions": []}
    assert served.get("/zoneingresses/zone-ingress-1/_overview") == ingress
    assert served.get("/zoneingresses+insights")["items"] == [ingress]
    [egress] = served.get("/zoneegressoverviews")["items"]
    assert egress["type"] == "ZoneEgressOverview" and egress["zoneEgressInsight"] == {"subscriptions": []}
    assert served.get(f"/zoneegresses/{egress['name']}/_overview") == egress
    assert served.get("/zoneegresses/nope/_overview", 404)["title"] == "Could not retrieve a resource"


def test_a_kri_reads_the_resource_it_names(served: Served) -> None:
    for path in (
        "/meshes/default/meshservices/backend",
        "/meshes/default/dataplanes/frontend-1",
        "/meshes/default",
        "/zoneingresses/zone-ingress-1",
    ):
        item = served.get(path)
        assert served.get(f"/_kri/{item['kri']}") == item
    api = served.cp.api
    assert _assert_kuma_error(request(api, "GET", "/_kri/kri_msvc_default___nope_"), 404, "Could not retrieve a resource")
    assert _assert_kuma_error(request(api, "GET", "/_kri/kri_msvc_default_east__backend_"), 404, "Could not retrieve a resource")
    assert _assert_kuma_error(request(api, "GET", "/_kri/kri_msvc_default_default__backend_"), 404, "Could not retrieve a resource")
    assert served.get("/_kri/kri_msvc_default___backend_http")["name"] == "backend"  # a section name is ignored
    body = _assert_kuma_error(request(api, "GET", "/_kri/not-a-kri"), 400, "Bad Request")
    assert "invalid identifier" in body["detail"]
    body = _assert_kuma_error(request(api, "GET", "/_kri/kri_zz_default___x_"), 400, "Bad Request")
    assert "unknown short name" in body["detail"]


def test_mesh_insights_count_the_served_commit(served: Served) -> None:
    insights = {i["name"]: i for i in served.get("/mesh-insights")["items"]}
    assert set(insights) == {"default", "other"}
    default = insights["default"]
    assert default["dataplanes"] == {"total": 6, "online": 0, "offline": 6, "partiallyDegraded": 0}
    assert default["dataplanesByType"]["gatewayBuiltin"]["total"] == 1
    assert default["policies"]["MeshTimeout"] == {"total": 3}
    assert default["resources"]["MeshService"] == {"total": 6}
    assert "services" not in default  # Exclusive: MeshServices, no kuma.io/service counts
    assert insights["other"]["policies"]["MeshRetry"] == {"total": 1}  # Kuma's default policy
    assert served.get("/meshes/default/service-insights")["total"] == 0
    assert served.get("/mesh-insights/nope", 404)["title"] == "Could not retrieve a resource"
