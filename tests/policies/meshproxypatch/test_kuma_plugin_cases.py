"""MeshProxyPatch's modifications, case by case against Kuma's own plugin tables.

kuma_plugin_cases.yaml holds Kuma v2.14.3's cluster, listener, network filter, HTTP filter and
virtual host tables in one form (see its header). Each case runs `apply_modifications` on the
resources it lists and compares every resulting resource, as Envoy's JSON, with Kuma's.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml
from envoy.config.cluster.v3 import cluster_pb2
from envoy.config.listener.v3 import listener_pb2

from reconciler.policies.meshproxypatch.envoy import Generated, apply_modifications
from reconciler.policies.meshproxypatch.envoyjson import from_json, to_json
from reconciler.xds_types import CLUSTER, LISTENER

CASES = yaml.safe_load((Path(__file__).parent / "kuma_plugin_cases.yaml").read_text(encoding="utf-8"))
_TYPES = {"clusters": (CLUSTER, cluster_pb2.Cluster), "listeners": (LISTENER, listener_pb2.Listener)}


def _resources(case: dict[str, Any]) -> list[Generated]:
    out = []
    for key, (type_url, message_type) in _TYPES.items():
        for doc in case.get(key) or ():
            body = {k: v for k, v in doc.items() if k != "origin"}
            out.append(Generated(type_url, body["name"], doc.get("origin", "inbound"), from_json(body, message_type)))
    return out


@pytest.mark.parametrize("case", CASES, ids=[c["name"] for c in CASES])
def test_modifications_give_kumas_resources(case: dict[str, Any]) -> None:
    result, problems = apply_modifications({"appendModifications": case["modifications"]}, _resources(case))
    assert problems == []
    for key, (type_url, _) in _TYPES.items():
        actual = sorted((to_json(r.message) for r in result if r.type_url == type_url), key=lambda d: str(d.get("name")))
        expected = sorted(case["expected"].get(key) or [], key=lambda d: str(d.get("name")))
        assert actual == expected, key


def test_cases_cover_every_modification_kind_and_operation() -> None:
    seen = {(kind, body["operation"]) for case in CASES for mod in case["modifications"] for kind, body in mod.items()}
    for kind in ("cluster", "listener", "virtualHost"):
        assert {(kind, op) for op in ("Add", "Remove", "Patch")} <= seen
    for kind in ("networkFilter", "httpFilter"):
        assert {(kind, op) for op in ("AddFirst", "AddLast", "AddBefore", "AddAfter", "Remove", "Patch")} <= seen
