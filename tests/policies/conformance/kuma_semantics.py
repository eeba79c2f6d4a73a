"""Kuma v2.14.3 semantics the matcher converter needs, written from Kuma's source:

- the test metadata builders of `pkg/test/resources/matadata.go` (zone / global origin,
  Universal / Kubernetes names, KDS-synced names hashed as `pkg/kds/hash` hashes them, system
  and producer roles), which give the 14 variants of each `dataplane-kind` case;
- subsets (`pkg/plugins/policies/core/rules/subsetutils`: `ContainsElement`) and
  `Rules.Compute`, which say which rule of a golden applies to an element;
- `meshhttproute HashMatches`, the `__rule-matches-hash__` of a route rule.
"""

from __future__ import annotations

import base64
import hashlib
import json
from typing import Any


# -- Kuma's test metadata builders (pkg/test/resources/matadata.go) ----------------------------
def _fnv64a(parts: list[str]) -> bytes:
    h = 0xCBF29CE484222325
    for p in parts:
        for b in p.encode():
            h ^= b
            h = (h * 0x100000001B3) & 0xFFFFFFFFFFFFFFFF
    return h.to_bytes(8, "big")


def hashed_name(mesh: str, name: str, *values: str) -> str:
    alphabet = "bcdfghjklmnpqrstvwxz2456789"
    encoded = "".join(alphabet[ord(c) % len(alphabet)] for c in _fnv64a([mesh, name, *values]).hex())
    return f"{name}-{encoded}"


Meta = tuple[str, dict[str, str]]


def zone_uni(name: str, mesh: str, labels: dict[str, str]) -> Meta:
    return name, {"kuma.io/origin": "zone", "kuma.io/zone": "zone-uni", "kuma.io/display-name": name, **labels}


def zone_k8s(name: str, mesh: str, labels: dict[str, str]) -> Meta:
    base = {"kuma.io/origin": "zone", "kuma.io/zone": "zone-k8s", "k8s.kuma.io/namespace": "ns-k8s", "kuma.io/mesh": mesh}
    return f"{name}.ns-k8s", {**base, "kuma.io/display-name": name, **labels}


def global_uni(name: str, mesh: str, labels: dict[str, str]) -> Meta:
    return name, {"kuma.io/origin": "global", "kuma.io/display-name": name, **labels}


def global_k8s(name: str, mesh: str, labels: dict[str, str]) -> Meta:
    base = {"kuma.io/origin": "global", "k8s.kuma.io/namespace": "ns-k8s", "kuma.io/mesh": mesh}
    return f"{name}.ns-k8s", {**base, "kuma.io/display-name": name, **labels}


def system(fn: Any) -> Any:
    def build(name: str, mesh: str, labels: dict[str, str]) -> Meta:
        n, lb = fn(name, mesh, labels)
        return n, {**lb, "kuma.io/policy-role": "system", "k8s.kuma.io/namespace": "kuma-system"}

    return build


def producer(fn: Any) -> Any:
    def build(name: str, mesh: str, labels: dict[str, str]) -> Meta:
        n, lb = fn(name, mesh, labels)
        return n, {**lb, "kuma.io/policy-role": "producer"}

    return build


def _sync(fn: Any, k8s: bool) -> Any:
    def build(name: str, mesh: str, labels: dict[str, str]) -> Meta:
        n, lb = fn(name, mesh, labels)
        values = [lb[k] for k in ("kuma.io/zone", "k8s.kuma.io/namespace") if k in lb]
        new = hashed_name(mesh, lb.get("kuma.io/display-name") or n, *values)
        return (f"{new}.kuma-system" if k8s else new), lb

    return build


def sync_uni(fn: Any) -> Any:
    return _sync(fn, False)


def sync_k8s(fn: Any) -> Any:
    return _sync(fn, True)


VARIANTS: dict[str, tuple[Any, Any]] = {
    "uni-zone": (zone_uni, zone_uni),
    "k8s-zone": (zone_k8s, zone_k8s),
    "policy-from-global-uni-zone-uni-on-global": (sync_uni(zone_uni), system(global_uni)),
    "policy-from-global-uni-zone-uni-on-zone": (zone_uni, system(sync_uni(global_uni))),
    "policy-from-global-uni-zone-k8s-on-zone": (zone_k8s, system(sync_k8s(global_uni))),
    "policy-from-global-uni-zone-k8s-on-global": (sync_uni(zone_k8s), system(global_uni)),
    "policy-from-global-k8s-zone-uni-on-zone": (zone_uni, system(sync_uni(global_k8s))),
    "policy-from-global-k8s-zone-uni-on-global": (sync_k8s(zone_uni), system(global_k8s)),
    "policy-from-global-k8s-zone-k8s-on-zone": (zone_k8s, system(sync_k8s(global_k8s))),
    "policy-from-global-k8s-zone-k8s-on-global": (sync_k8s(zone_k8s), system(global_k8s)),
    "policy-global-uni-dpp-k8s-on-zone": (zone_uni, system(sync_uni(global_uni))),
    "policy-global-uni-dpp-k8s-on-global": (sync_uni(zone_uni), system(global_uni)),
    "policy-from-k8s-to-uni": (zone_uni, producer(sync_uni(zone_k8s))),
    "policy-from-k8s-to-k8s": (zone_k8s, producer(sync_k8s(zone_k8s))),
}


def apply_meta(doc: dict[str, Any], fn: Any) -> dict[str, Any]:
    name, labels = fn(doc["name"], doc.get("mesh", ""), dict(doc.get("labels") or {}))
    return {**doc, "name": name, "labels": labels}


# -- Kuma's subsets (pkg/plugins/policies/core/rules/subsetutils) ------------------------------
def contains(subset: list[dict[str, Any]], element: dict[str, str]) -> bool:
    """subsetutils.Subset.ContainsElement."""
    if not subset:
        return True
    if not element:
        return False
    overlap = False
    for tag in subset:
        if tag["Key"] in element:
            overlap = True
            equal = element[tag["Key"]] == tag["Value"]
            if equal == tag["Not"]:
                return False
        elif not tag["Not"]:
            return False
    return overlap or not any(not t["Not"] for t in subset)


def compute(rules: list[dict[str, Any]], element: dict[str, str]) -> dict[str, Any] | None:
    """Rules.Compute: the first rule whose subset contains the element."""
    return next((r for r in rules if contains(r["Subset"] or [], element)), None)


def go_match(m: dict[str, Any]) -> dict[str, Any]:
    # json.Marshal of meshhttproute Match: fields in the Go struct's order.
    out: dict[str, Any] = {}
    if "path" in m:
        out["path"] = {"value": m["path"].get("value"), "type": m["path"].get("type")}
    if "method" in m:
        out["method"] = m["method"]
    if "queryParams" in m:
        out["queryParams"] = [{"type": q.get("type"), "name": q.get("name"), "value": q.get("value")} for q in m["queryParams"]]
    if "headers" in m:
        out["headers"] = [{k: h[k] for k in ("type", "name", "value") if k in h} for h in m["headers"]]
    return out


def matches_hash(matches: list[dict[str, Any]]) -> str:
    raw = json.dumps([go_match(m) for m in matches], separators=(",", ":"))
    return base64.b64encode(hashlib.sha256(raw.encode()).digest()).decode()


def merge_patch(base: Any, patch: Any) -> Any:
    if not isinstance(base, dict) or not isinstance(patch, dict):
        return patch
    out = dict(base)
    for k, v in patch.items():
        out[k] = merge_patch(base.get(k), v)
    return out


def origins(rule: dict[str, Any]) -> list[str]:
    return [o["name"] if "name" in o else o["Resource"]["name"] for o in rule.get("Origin") or []]
