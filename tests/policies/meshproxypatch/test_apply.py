"""What Kuma's plugin tables do not pin: Duration merging, modifications that cannot apply, and
resources a modification does not change."""

from __future__ import annotations

from envoy.config.cluster.v3 import cluster_pb2

from reconciler.policies.meshproxypatch.envoy import Generated, apply_modifications
from reconciler.policies.meshproxypatch.envoyjson import from_json, to_json
from reconciler.xds_types import CLUSTER, LISTENER


def _cluster(doc: dict[str, object], origin: str = "outbound") -> Generated:
    return Generated(CLUSTER, str(doc["name"]), origin, from_json(doc, cluster_pb2.Cluster))


def test_a_patched_duration_is_replaced_not_added_to() -> None:
    # Plain protobuf merging would give 5.5s (seconds from the patch, nanos kept); Kuma replaces it.
    resources = [_cluster({"name": "backend", "connectTimeout": "1.500s"})]
    conf = {"appendModifications": [{"cluster": {"operation": "Patch", "value": "connectTimeout: 5s"}}]}
    result, problems = apply_modifications(conf, resources)
    assert problems == []
    assert to_json(result[0].message)["connectTimeout"] == "5s"


def test_a_modification_that_cannot_apply_is_skipped_and_reported_and_the_others_still_apply() -> None:
    resources = [_cluster({"name": "backend", "connectTimeout": "1s"})]
    conf = {
        "appendModifications": [
            {"cluster": {"operation": "Patch", "jsonPatches": [{"op": "replace", "path": "/lbPolicy/x", "value": 1}]}},
            {"cluster": {"operation": "Patch", "value": "connectTimeout: 7s"}},
        ]
    }
    result, problems = apply_modifications(conf, resources)
    assert len(problems) == 1
    assert problems[0].startswith("modification 0 (cluster Patch) skipped: json patch replace /lbPolicy/x")
    assert to_json(result[0].message) == {"name": "backend", "connectTimeout": "7s"}


def test_patching_a_filter_with_a_config_of_another_type_is_reported() -> None:
    listener = {
        "name": "inbound:10.0.0.1:8080",
        "filterChains": [
            {
                "filters": [
                    {
                        "name": "envoy.filters.network.tcp_proxy",
                        "typedConfig": {
                            "@type": "type.googleapis.com/envoy.extensions.filters.network.tcp_proxy.v3.TcpProxy",
                            "cluster": "a",
                        },
                    }
                ]
            }
        ],
    }
    from envoy.config.listener.v3 import listener_pb2

    resources = [Generated(LISTENER, listener["name"], "inbound", from_json(listener, listener_pb2.Listener))]  # type: ignore[arg-type]
    value = (
        "name: envoy.filters.network.tcp_proxy\n"
        "typedConfig:\n  '@type': type.googleapis.com/envoy.extensions.filters.network.direct_response.v3.Config\n"
    )
    conf = {
        "appendModifications": [
            {"networkFilter": {"operation": "Patch", "match": {"name": "envoy.filters.network.tcp_proxy"}, "value": value}}
        ]
    }
    result, problems = apply_modifications(conf, resources)
    assert len(problems) == 1 and "is different than src" in problems[0]
    assert to_json(result[0].message) == listener
    assert not result[0].changed


def test_resources_a_modification_leaves_as_they_were_are_not_marked_changed() -> None:
    resources = [_cluster({"name": "a", "connectTimeout": "1s"}), _cluster({"name": "b", "connectTimeout": "1s"}, origin="inbound")]
    conf = {"appendModifications": [{"cluster": {"operation": "Patch", "match": {"origin": "outbound"}, "value": "connectTimeout: 2s"}}]}
    result, _ = apply_modifications(conf, resources)
    assert {r.name: r.changed for r in result} == {"a": True, "b": False}
    # A patch that sets what is there already changes nothing.
    result, _ = apply_modifications(
        {"appendModifications": [{"cluster": {"operation": "Patch", "value": "connectTimeout: 1s"}}]}, resources[1:]
    )
    assert not result[0].changed
