"""VIPs, virtual outbounds and DNS records (reconciler/mesh/vips.py), and their persistence by
the server's Engine (vips.json in the state directory).

What a transparent proxy's user notices: `<service>.mesh` names answer with a VIP of Kuma's
range, the VIP carries an outbound on port 80 (or the MeshService's ports), and a VIP never
moves while its destination exists: not when others are added, not across a restart, and
`plan` derives the same VIPs as `serve` for one commit.
"""

from __future__ import annotations

import ipaddress
import json
from pathlib import Path

from reconciler.ca.provider import CertificateProvider
from reconciler.mesh.model import MeshModel, build_mesh_model
from reconciler.mesh.vips import KIND_RANGES, SERVICE_RANGE, Range, allocate
from reconciler.reconcile import VIPS_FILE, Engine
from reconciler.source.git import GitSource
from tests.support import HTTPBIN_EXTERNAL, GitRepo, dataplane_yaml, mesh, snapshot_of_text


def model_of(text: str, previous: dict[tuple[str, str], str] | None = None) -> MeshModel:
    return build_mesh_model(snapshot_of_text(text).resources, previous_vips=previous)


def dps(*services: str, mesh_name: str = "default") -> str:
    return "---\n".join(dataplane_yaml(f"{s}-1", s, 18000 + i, 9000 + i, mesh=mesh_name) for i, s in enumerate(services))


MESH_SERVICE = (
    """\
---
type: MeshService
mesh: default
name: billing
spec:
  selector: {dataplaneTags: {kuma.io/service: billing}}
  ports:
    - {port: 8080, targetPort: 9100, appProtocol: http}
    - {port: 9090, name: admin}
---
"""
    + HTTPBIN_EXTERNAL
    + """---
type: MeshMultiZoneService
mesh: default
name: global-billing
spec:
  selector: {meshService: {matchLabels: {app: billing}}}
  ports: [{port: 8080, appProtocol: http}]
"""
)


def in_cidr(ip: str, cidr: str) -> bool:
    return ipaddress.IPv4Address(ip) in ipaddress.IPv4Network(cidr)


def test_service_names_ports_and_ranges_follow_kuma() -> None:
    model = model_of(dps("web_api", "backend") + MESH_SERVICE)
    names = {r.name: r.ips[0] for r in model.dns["default"]}
    # `<svc>.mesh` and, for a name with `_`, the dotted variant, both at one VIP of 240.0.0.0/4.
    assert names["web_api.mesh"] == names["web.api.mesh"]
    assert in_cidr(names["backend.mesh"], "240.0.0.0/4")
    for kind, cidr in (("MeshService:billing", "241.0.0.0/8"), ("MeshExternalService:httpbin", "242.0.0.0/8")):
        assert in_cidr(model.vips[("default", kind)], cidr)
    assert in_cidr(model.vips[("default", "MeshMultiZoneService:global-billing")], "243.0.0.0/8")
    # The MeshService family's VIPs never fall in another's range, nor do service VIPs.
    assert not any(in_cidr(names["backend.mesh"], c) for c in ("241.0.0.0/8", "242.0.0.0/8", "243.0.0.0/8"))
    # DNS records: sorted by name; default HostnameGenerators name the MeshService and MeshExternalService.
    assert [r.name for r in model.dns["default"]] == sorted(names)
    assert names["billing.svc.mesh.local"] == model.vips[("default", "MeshService:billing")]
    assert names["httpbin.extsvc.mesh.local"] == model.vips[("default", "MeshExternalService:httpbin")]

    outbounds = {(o.address, o.port): o for o in model.virtual_outbounds["default"]}
    web = outbounds[(names["web_api.mesh"], 80)]
    assert (web.service, dict(web.tags), web.backend_ref) == ("web_api", {"kuma.io/service": "web_api"}, None)
    billing = model.vips[("default", "MeshService:billing")]
    assert outbounds[(billing, 8080)].backend_ref == ("MeshService", "billing", 8080)
    assert outbounds[(billing, 9090)].backend_ref == ("MeshService", "billing", 9090)
    assert outbounds[(model.vips[("default", "MeshExternalService:httpbin")], 443)].backend_ref == ("MeshExternalService", "httpbin", 443)
    mzs = model.vips[("default", "MeshMultiZoneService:global-billing")]
    assert outbounds[(mzs, 8080)].backend_ref == ("MeshMultiZoneService", "global-billing", 8080)
    assert len(outbounds) == 2 + 2 + 1 + 1


def test_ignored_inbounds_port_zero_and_exclusive_meshes_get_no_service_vip() -> None:
    ignored = dataplane_yaml("old-1", "old", 18000, 9000).replace("      tags:", "      state: Ignored\n      tags:", 1)
    model = model_of(ignored + "---\n" + dps("kept"))
    assert [r.name for r in model.dns["default"]] == ["kept.mesh"]

    exclusive = mesh("default") + "meshServices:\n  mode: Exclusive\n"
    text = exclusive + "---\n" + dps("kept") + MESH_SERVICE
    model = build_mesh_model(snapshot_of_text(text, add_meshes=False).resources)
    assert "kept.mesh" not in {r.name for r in model.dns["default"]}
    assert all(o.backend_ref is not None for o in model.virtual_outbounds["default"])
    assert ("default", "MeshService:billing") in model.vips


def test_meshes_have_their_own_service_vips() -> None:
    text = mesh("other") + "---\n" + dps("backend") + "---\n" + dps("backend", mesh_name="other")
    model = model_of(text)
    assert {r.name for r in model.dns["other"]} == {"backend.mesh"}
    assert model.vips[("default", "service:backend")] != model.vips[("other", "service:backend")]


def test_adding_services_moves_no_vip() -> None:
    before = model_of(dps("a", "b", "c") + MESH_SERVICE).vips
    after = model_of(dps("a", "b", "c", "d", "e", "f") + MESH_SERVICE).vips
    assert {k: after[k] for k in before} == before
    assert len(after) == len(before) + 3


def test_a_collision_moves_on_and_previous_vips_hold_it() -> None:
    # A /29 has six usable addresses (never .0 nor .7): every entry gets one of them, a seventh none.
    tiny = Range("10.9.0.0/29")
    entries = [("m", f"service:s{i}") for i in range(7)]
    fresh = allocate(entries[:6], service_range=tiny)
    assert sorted(fresh.values()) == [f"10.9.0.{i}" for i in range(1, 7)]
    assert len(allocate(entries, service_range=tiny)) == 6
    # Derived from scratch, a newcomer that sorts first can take the address another entry had...
    two = Range("10.9.0.0/30")
    alone = allocate([("m", "service:b")], service_range=two)
    newcomer = next(
        n for n in (f"service:a{i}" for i in range(64)) if allocate([("m", n)], service_range=two) == {("m", n): alone[("m", "service:b")]}
    )
    fresh_both = allocate([("m", newcomer), ("m", "service:b")], service_range=two)
    assert fresh_both[("m", "service:b")] != alone[("m", "service:b")]
    # ...but with the previous allocation given (serve's vips.json), what exists keeps its VIP.
    held = allocate([("m", newcomer), ("m", "service:b")], alone, service_range=two)
    assert held[("m", "service:b")] == alone[("m", "service:b")]
    assert held[("m", newcomer)] != held[("m", "service:b")]


def test_previous_vips_are_kept_unless_out_of_range_or_taken_twice() -> None:
    previous = {
        ("default", "service:a"): "240.0.0.7",
        ("default", "service:b"): "240.0.0.7",  # a damaged file: the second claim is derived again
        ("default", "service:c"): "10.0.0.1",  # outside the range (Kuma skips it too)
        ("default", "MeshService:billing"): "241.0.0.9",
    }
    model = model_of(dps("a", "b", "c") + MESH_SERVICE, previous)
    assert model.vips[("default", "service:a")] == "240.0.0.7"
    assert model.vips[("default", "service:b")] not in ("240.0.0.7", "")
    assert SERVICE_RANGE.contains(int(ipaddress.IPv4Address(model.vips[("default", "service:c")])))
    assert model.vips[("default", "MeshService:billing")] == "241.0.0.9"
    assert KIND_RANGES["MeshService"].contains(int(ipaddress.IPv4Address("241.0.0.9")))
    assert {r.name: r.ips for r in model.dns["default"]}["a.mesh"] == ("240.0.0.7",)


def engine(repo: GitRepo, state: Path | None) -> Engine:
    return Engine(GitSource(str(repo.path)), CertificateProvider(), vips_file=state / VIPS_FILE if state else None)


def build(e: Engine, revision: str) -> MeshModel:
    b = e.build(e.evaluate(revision).snapshot, ())
    e.commit(b)
    return b.model


def test_serve_keeps_vips_across_restarts_and_derives_what_plan_derives(tmp_path: Path) -> None:
    repo = GitRepo(tmp_path / "repo")
    state = tmp_path / "state"
    state.mkdir()
    first = repo.commit({"mesh.yaml": mesh(), "dps.yaml": dps("a", "b") + MESH_SERVICE})
    served = build(engine(repo, state), first)
    # The same commit without a state file (plan, reconcile --out) gives the same VIPs.
    assert build_mesh_model(engine(repo, None).evaluate(first).snapshot.resources).vips == served.vips
    saved = json.loads((state / VIPS_FILE).read_text())
    assert saved["meshes"]["default"]["service:a"] == served.vips[("default", "service:a")]

    # An allocation made earlier (Kuma's, or before a collision) survives a restart as it is.
    saved["meshes"]["default"]["service:a"] = "240.1.2.3"
    (state / VIPS_FILE).write_text(json.dumps(saved))
    second = repo.commit({"more.yaml": dps("c")})
    restarted = build(engine(repo, state), second)
    assert restarted.vips[("default", "service:a")] == "240.1.2.3"
    assert {r.name: r.ips for r in restarted.dns["default"]}["a.mesh"] == ("240.1.2.3",)
    assert restarted.vips[("default", "service:b")] == served.vips[("default", "service:b")]
    # The commit's new service is a new virtual outbound of the long-lived engine's model.
    c = restarted.vips[("default", "service:c")]
    assert [(o.port, o.service) for o in restarted.virtual_outbounds["default"] if o.address == c] == [(80, "c")]
    assert json.loads((state / VIPS_FILE).read_text())["meshes"]["default"]["service:c"] == restarted.vips[("default", "service:c")]

    # A damaged file is not fatal: VIPs are derived again.
    (state / VIPS_FILE).write_text("{not json")
    assert build(engine(repo, state), first).vips == served.vips


def test_a_vip_written_in_git_status_is_kept() -> None:
    # A MeshService exported from Kuma (kumactl get ... -o yaml) carries its status: its VIP stays.
    written = MESH_SERVICE.replace(
        "    - {port: 9090, name: admin}\n", "    - {port: 9090, name: admin}\nstatus:\n  vips: [{ip: 241.0.0.5}]\n"
    )
    written = written.replace(
        "  endpoints: [{address: httpbin.org, port: 443}]\n",
        "  endpoints: [{address: httpbin.org, port: 443}]\nstatus:\n  vip: {ip: 242.0.0.5}\n",
    )
    model = model_of(dps("a") + written, {("default", "MeshService:billing"): "241.0.0.9"})
    assert model.vips[("default", "MeshService:billing")] == "241.0.0.5"
    assert model.vips[("default", "MeshExternalService:httpbin")] == "242.0.0.5"
    assert ("241.0.0.5", 9090) in {(o.address, o.port) for o in model.virtual_outbounds["default"]}
