"""Which outbound shape a proxy gets, how the compact listener is folded, and what is reported
where the compact shape differs from Kuma's (a label error, a MeshProxyPatch that cannot apply)."""

from __future__ import annotations

import pytest
from envoy.config.listener.v3 import listener_components_pb2, listener_pb2

from reconciler.envoy_builders import socket_address
from reconciler.mesh.model import build_mesh_model
from reconciler.mesh.shape import SHAPE_LABEL, outbound_shape
from reconciler.views.proxy import proxy_views
from reconciler.xds.generate.compact import COMPACT_LISTENER, compact_outbound_listeners
from reconciler.xds.resources import LISTENER, resource
from tests.gitops.serving import run_cli
from tests.support import GitRepo, dataplane_yaml, generate_checked, snapshot_of_text, validate_text

MESH = "type: Mesh\nname: default\n"


@pytest.mark.parametrize(
    ("labels", "outbounds", "compact_from", "shape", "reason"),
    [
        ({}, 5, None, "kuma", "the default"),
        ({}, 5, 5, "compact", "5 outbounds, at least --compact-outbounds 5"),
        ({}, 4, 5, "kuma", "the default"),
        ({}, 0, 1, "kuma", "the default"),
        ({SHAPE_LABEL: "kuma"}, 500, 5, "kuma", f"label {SHAPE_LABEL}: kuma"),
        ({SHAPE_LABEL: "compact"}, 1, None, "compact", f"label {SHAPE_LABEL}: compact"),
    ],
)
def test_the_label_wins_then_the_threshold_then_kumas_shape(
    labels: dict[str, str], outbounds: int, compact_from: int | None, shape: str, reason: str
) -> None:
    choice = outbound_shape(labels, outbounds, compact_from)
    assert (choice.shape, choice.reason) == (shape, reason)


def _listener(name: str, address: str, port: int, **extra: object) -> listener_pb2.Listener:
    chain = listener_components_pb2.FilterChain(filters=[listener_components_pb2.Filter(name="envoy.filters.network.tcp_proxy")])
    return listener_pb2.Listener(name=name, address=socket_address(address, port), filter_chains=[chain], **extra)


def test_a_wildcard_outbound_is_matched_by_port_and_a_listener_with_more_than_chains_stays_its_own() -> None:
    wildcard = resource(LISTENER, "outbound:0.0.0.0:7000", _listener("outbound:0.0.0.0:7000", "0.0.0.0", 7000))
    plain = resource(LISTENER, "outbound:127.0.0.1:7001", _listener("outbound:127.0.0.1:7001", "127.0.0.1", 7001))
    special = _listener("outbound:127.0.0.1:7002", "127.0.0.1", 7002)
    special.listener_filters.add(name="envoy.filters.listener.tls_inspector")
    kept = resource(LISTENER, special.name, special)
    out = compact_outbound_listeners([wildcard, plain, kept])
    assert [r.name for r in out] == [COMPACT_LISTENER, "outbound:127.0.0.1:7002"]
    compact = out[0].to_dict()
    assert [c["filterChainMatch"] for c in compact["filterChains"]] == [
        {"destinationPort": 7000},
        {"destinationPort": 7001, "prefixRanges": [{"addressPrefix": "127.0.0.1", "prefixLen": 32}]},
    ]
    assert [a["address"]["socketAddress"]["portValue"] for a in compact["additionalAddresses"]] == [7001]
    assert out[1] is kept


def _views(*docs: str, compact_from: int | None = None) -> dict[str, object]:
    snapshot = snapshot_of_text("\n---\n".join((MESH, *docs)))
    return proxy_views(build_mesh_model(snapshot.resources), compact_from=compact_from)  # type: ignore[return-value]


def test_compact_shape_serves_the_same_chains_as_kumas_listeners() -> None:
    services = [dataplane_yaml(f"s{i}-1", f"s{i}", 9000 + i, 9000 + i) for i in range(3)]
    client = dataplane_yaml("client", "client", 8000, 8001, {f"s{i}": 7000 + i for i in range(3)})
    kuma = generate_checked(_views(*services, client)["default.client"])  # type: ignore[arg-type]
    compact = generate_checked(_views(*services, client, compact_from=3)["default.client"])  # type: ignore[arg-type]
    kuma_listeners = {n: r.to_dict() for n, r in kuma.of(LISTENER).items() if n.startswith("outbound:")}
    folded = compact.of(LISTENER)[COMPACT_LISTENER].to_dict()
    assert not any(n.startswith("outbound:") for n in compact.of(LISTENER))
    for chain in folded["filterChains"]:
        ours = kuma_listeners[chain["name"]]["filterChains"][0]
        assert chain["filters"] == ours["filters"]
    # Clusters and endpoints do not depend on the shape.
    assert {t: set(kuma.of(t)) for t in kuma.by_type if t != LISTENER} == {t: set(compact.of(t)) for t in compact.by_type if t != LISTENER}


def test_an_unknown_shape_label_is_an_error_at_its_line() -> None:
    report = validate_text(MESH + "---\n" + dataplane_yaml("web", "web", 8000, 8001, labels={SHAPE_LABEL: "tiny"}))
    assert [p.render() for p in report.errors] == [
        "input.yaml:8: Dataplane default/web /labels/reconciler.io~1outbound-shape: must be one of kuma, compact: "
        "kuma for one listener per outbound (Kuma's), compact for one listener holding them all"
    ]


PATCH = """\
type: MeshProxyPatch
mesh: default
name: patch-outbound
spec:
  targetRef:
    kind: Mesh
  default:
    appendModifications:
      - cluster:
          operation: Patch
          match:
            name: backend
          value: |
            connectTimeout: 2s
      - listener:
          operation: Patch
          match:
            name: outbound:127.0.0.1:7000
          value: |
            perConnectionBufferLimitBytes: 65536
"""


def test_a_proxy_patch_naming_a_per_outbound_listener_is_reported_on_a_compact_proxy_only(repo: GitRepo) -> None:
    repo.commit(
        {
            "mesh.yaml": MESH,
            "backend.yaml": dataplane_yaml("backend-1", "backend", 9000, 9000),
            "web.yaml": dataplane_yaml("web", "web", 8000, 8001, {"backend": 7000}),
            "patch.yaml": PATCH,
        }
    )
    code, out = run_cli("inspect", "dataplane", "--repo", str(repo.path), "default", "web", env={"RECONCILER_COMPACT_OUTBOUNDS": None})
    assert code == 0, out
    assert "outbound shape: kuma (the default)" in out and "does not have" not in out
    code, out = run_cli("inspect", "dataplane", "--repo", str(repo.path), "--compact-outbounds", "1", "default", "web")
    assert code == 0, out
    assert out.splitlines()[-1] == (
        "patch.yaml:18: warning: MeshProxyPatch default/patch-outbound /spec/default/appendModifications/1/listener/match/name: "
        "matches listener outbound:127.0.0.1:7000, which default.web does not have: it has the compact outbound shape "
        "(1 outbounds, at least --compact-outbounds 1), where that outbound is the filter chain outbound:127.0.0.1:7000 of the "
        f"listener `outbounds`; to patch it, give the Dataplane the label {SHAPE_LABEL}: kuma"
    )
