"""Kuma's dataplane overviews and global insight with real Envoys: a proxy that connected is
online with its responses ACKed per xDS type, one that never connected has no subscription,
one whose stream closed has a disconnectTime, and a dataplane registered at connect time (not
in git) is listed for as long as it is connected."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from tests.api.support import request
from tests.e2e.harness import ConfigRemote, ControlPlaneProcess, EnvoyProcess, free_port, wait_until
from tests.support import dataplane_yaml

pytestmark = pytest.mark.envoy

MESH = """\
type: Mesh
name: default
mtls:
  enabledBackend: ca-1
  backends:
    - name: ca-1
      type: builtin
"""


@dataclass
class Mesh:
    remote: ConfigRemote
    cp: ControlPlaneProcess
    work: Path
    registered_file: Path

    def get(self, path: str) -> Any:
        reply = request(self.cp.api, "GET", path)
        assert reply.status == 200, f"GET {path}: {reply.status} {reply.body[:500]!r}"
        return reply.json()

    def overviews(self, path: str = "/meshes/default/dataplanes/_overview") -> dict[str, dict[str, Any]]:
        return {i["name"]: i for i in self.get(path)["items"]}


@pytest.fixture(scope="module")
def mesh(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Mesh]:
    root = tmp_path_factory.mktemp("kuma-overview")
    remote = ConfigRemote(root)
    files = {
        "mesh.yaml": MESH,
        "web.yaml": dataplane_yaml("web", "web", free_port(), free_port(), labels={"app": "web"}),
        "idle.yaml": dataplane_yaml("idle", "idle", free_port(), free_port()),
    }
    sha = remote.push(files, "first")
    registered = root / "reg.yaml"
    registered.write_text(dataplane_yaml("reg", "reg", free_port(), free_port(), labels={"origin": "node-metadata"}))
    cp = ControlPlaneProcess(remote.bare, root / "state", dataplane_auth=False)
    envoys = [EnvoyProcess(cp, root / "envoys", name="web"), EnvoyProcess(cp, root / "envoys", name="reg", dataplane_file=registered)]
    cp.start()
    try:
        for envoy in envoys:
            envoy.start()
        cp.wait_applied(sha, ["default.web", "default.reg"], timeout=30)
        yield Mesh(remote, cp, root / "envoys", registered)
    finally:
        for envoy in envoys:
            envoy.stop()
        cp.stop()


def test_a_connected_proxy_is_online_with_its_responses_acked(mesh: Mesh) -> None:
    web = mesh.overviews()["web"]
    assert web["type"] == "DataplaneOverview"
    assert (web["mesh"], web["name"]) == ("default", "web")
    assert web["labels"]["app"] == "web"
    assert web["dataplane"]["networking"]["inbound"][0]["tags"]["kuma.io/service"] == "web"
    insight = web["dataplaneInsight"]
    [subscription] = insight["subscriptions"]
    assert subscription["connectTime"].endswith("Z")
    assert "disconnectTime" not in subscription
    status = subscription["status"]
    for xds in ("cds", "lds", "total"):
        assert status[xds]["responsesSent"] >= 1, status
        assert status[xds]["responsesAcknowledged"] == status[xds]["responsesSent"], status
        assert status[xds]["responsesRejected"] == 0
    assert status["total"]["responsesSent"] >= status["cds"]["responsesSent"] + status["lds"]["responsesSent"]
    assert insight["mTLS"] == {"issuedBackend": "ca-1", "supportedBackends": ["ca-1"]}
    assert mesh.get("/meshes/default/dataplanes/web/_overview") == web


def test_a_proxy_that_never_connected_has_no_subscription(mesh: Mesh) -> None:
    idle = mesh.overviews()["idle"]
    assert idle["dataplaneInsight"] == {"subscriptions": []}


def test_a_registered_dataplane_is_listed_while_connected(mesh: Mesh) -> None:
    item = mesh.get("/meshes/default/dataplanes/reg")
    assert item["labels"]["origin"] == "node-metadata"
    assert item["networking"]["inbound"][0]["tags"]["kuma.io/service"] == "reg"
    assert "reg" in {i["name"] for i in mesh.get("/dataplanes")["items"]}
    assert mesh.overviews()["reg"]["dataplaneInsight"]["subscriptions"][0]["status"]["total"]["responsesAcknowledged"] >= 1


def test_overview_filters_and_the_other_paths(mesh: Mesh) -> None:
    assert set(mesh.overviews("/dataplanes/_overview?tag=kuma.io/service:web")) == {"web"}
    assert set(mesh.overviews("/meshes/default/dataplanes/_overview?filter[labels.app]=web")) == {"web"}
    assert set(mesh.overviews("/meshes/default/dataplanes+insights?name=idl")) == {"idle"}
    page = mesh.get("/meshes/default/dataplanes/_overview?size=1")
    assert page["total"] == 3 and len(page["items"]) == 1 and page["next"].endswith("offset=1&size=1")
    missing = request(mesh.cp.api, "GET", "/meshes/default/dataplanes/nope/_overview")
    assert missing.status == 404 and missing.json()["title"] == "Could not retrieve a resource"


def test_global_insight_counts_online_proxies(mesh: Mesh) -> None:
    insight = mesh.get("/global-insight")
    assert insight["dataplanes"]["standard"] == {"online": 2, "offline": 1, "partiallyDegraded": 0, "total": 3}
    assert insight["services"]["internal"] == {"online": 2, "offline": 1, "partiallyDegraded": 0, "total": 3}
    assert insight["meshes"] == {"total": 1}
    assert insight["resources"]["Dataplane"] == {"total": 3}
    # Kuma's default policies of the mesh are policies too.
    assert insight["policies"]["total"] == mesh.get("/meshes/default/meshtimeouts")["total"] + 2  # + retry, circuit breaker


def test_mesh_and_service_insights_count_online_proxies(mesh: Mesh) -> None:
    [insight] = mesh.get("/mesh-insights")["items"]
    assert insight == {**mesh.get("/mesh-insights/default"), "modificationTime": insight["modificationTime"]}
    assert (insight["type"], insight["name"]) == ("MeshInsight", "default")
    assert insight["dataplanes"] == {"total": 3, "online": 2, "offline": 1, "partiallyDegraded": 0}
    assert insight["mTLS"]["issuedBackends"] == {"ca-1": {"total": 2, "online": 2, "offline": 0, "partiallyDegraded": 0}}
    assert insight["services"] == {"total": 3, "internal": 3, "external": 0}
    assert insight["resources"]["Dataplane"] == {"total": 3}
    services = {i["name"]: i for i in mesh.get("/meshes/default/service-insights")["items"]}
    assert {name: s["status"] for name, s in services.items()} == {"idle": "offline", "reg": "online", "web": "online"}
    assert services["web"]["dataplanes"] == {"online": 1, "offline": 0, "total": 1}
    assert services["web"]["serviceType"] == "internal" and services["web"]["issuedBackends"] == {"ca-1": 1}
    one = mesh.get("/meshes/default/service-insights/web")
    assert {**one, "modificationTime": ""} == {**services["web"], "modificationTime": ""}
    assert [i["name"] for i in mesh.get("/service-insights?name=we")["items"]] == ["web"]
    assert mesh.get("/meshes/default/service-insights?type=gateway_builtin")["total"] == 0
    assert request(mesh.cp.api, "GET", "/meshes/default/service-insights?type=bogus").status == 400


def test_a_closed_stream_leaves_a_disconnect_time_and_an_offline_proxy(mesh: Mesh) -> None:
    envoy = EnvoyProcess(mesh.cp, mesh.work, name="idle")
    envoy.start()
    try:
        wait_until(lambda: mesh.overviews()["idle"]["dataplaneInsight"]["subscriptions"], 20, what="idle connected")
    finally:
        envoy.stop()
    wait_until(lambda: "disconnectTime" in mesh.overviews()["idle"]["dataplaneInsight"]["subscriptions"][0], 20, what="idle disconnected")
    [subscription] = mesh.overviews()["idle"]["dataplaneInsight"]["subscriptions"]
    assert subscription["disconnectTime"] >= subscription["connectTime"]
    assert mesh.get("/global-insight")["dataplanes"]["standard"]["offline"] == 1
