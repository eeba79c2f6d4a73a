"""The small JSON pieces Kuma's inspect responses are made of: a resource's `Meta`, a rule's
origins, tag matchers, and the hash Kuma gives a MeshHTTPRoute rule's `matches`."""

from __future__ import annotations

import base64
import hashlib
import json
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from reconciler.frozen import thaw
from reconciler.mesh.model import SERVICE_TAG
from reconciler.model import Resource
from reconciler.policies.core.destination import DISPLAY_NAME_LABEL, Destination
from reconciler.policies.core.merge import Contribution
from reconciler.types import ResourceKey

__all__ = [
    "entry_default",
    "resource_meta",
    "key_meta",
    "destination_meta",
    "origin_metas",
    "resource_origins",
    "matchers",
    "service_matcher",
    "hash_matches",
    "go_matches",
    "MATCHES_HASH_KEY",
]

MATCHES_HASH_KEY = "__rule-matches-hash__"
"""Kuma's matcher key for "traffic of the MeshHTTPRoute rule with these matches"."""

_MATCH_FIELDS = ("path", "method", "queryParams", "headers")
_PATH_FIELDS = ("value", "type")


def resource_meta(resource: Resource) -> dict[str, Any]:
    """Kuma's `Meta` of a resource as inspect responses name it: type, mesh, name, labels."""
    return {"type": resource.type, "mesh": resource.mesh, "name": resource.name, "labels": dict(resource.labels)}


def key_meta(key: ResourceKey, resources: Mapping[ResourceKey, Resource]) -> dict[str, Any]:
    """The `Meta` of the resource behind `key` (labels empty when it is not in `resources`)."""
    found = resources.get(key)
    return resource_meta(found) if found is not None else {"type": key.type, "mesh": key.mesh, "name": key.name, "labels": {}}


def destination_meta(mesh: str, dest: Destination) -> dict[str, Any]:
    """The `Meta` of a real destination (MeshService, MeshExternalService, MeshMultiZoneService).
    The display name the engine adds for `labels` selection is left out unless it says more."""
    labels = {k: v for k, v in dest.labels.items() if not (k == DISPLAY_NAME_LABEL and v == dest.service)}
    return {"type": dest.kind, "mesh": mesh, "name": dest.service, "labels": labels}


def origin_metas(origins: Iterable[Contribution], resources: Mapping[ResourceKey, Resource]) -> list[dict[str, Any]]:
    """A rule's `origin` of legacy rules: each contributing policy once, in merge order."""
    seen: list[ResourceKey] = []
    for c in origins:
        if c.policy not in seen:
            seen.append(c.policy)
    return [key_meta(k, resources) for k in seen]


def entry_default(c: Contribution, resources: Mapping[ResourceKey, Resource]) -> Any:
    """The `default` of the entry a contribution points at (`/spec/from/1` → spec.from[1].default)."""
    node: Any = resources[c.policy].spec
    for part in c.pointer.split("/")[2:]:
        node = node[int(part)] if isinstance(node, (list, tuple)) else node[part]
    return node["default"] if isinstance(node, Mapping) and "default" in node else node


def _rule_index(pointer: str) -> int:
    """`/spec/to/2` → 2: which entry of the policy contributed (Kuma's ruleIndex)."""
    tail = pointer.rstrip("/").rsplit("/", 1)[-1]
    return int(tail) if tail.isdigit() else 0


def resource_origins(origins: Iterable[Contribution], resources: Mapping[ResourceKey, Resource]) -> list[dict[str, Any]]:
    """A resource rule's `origin`: each contributing entry as {resourceMeta, ruleIndex}."""
    return [{"resourceMeta": key_meta(c.policy, resources), "ruleIndex": _rule_index(c.pointer)} for c in origins]


def matchers(tags: Mapping[str, str]) -> list[dict[str, Any]]:
    """Kuma's RuleMatcher list for a tag subset (sorted by key, as Kuma sorts them)."""
    return [{"key": k, "value": v, "not": False} for k, v in sorted(tags.items())]


def service_matcher(service: str) -> list[dict[str, Any]]:
    return matchers({SERVICE_TAG: service})


def _go_ordered(match: Mapping[str, Any]) -> dict[str, Any]:
    """A match with its fields in the order of Kuma's Go struct, which its JSON hash follows."""
    out: dict[str, Any] = {}
    for name in _MATCH_FIELDS:
        if match.get(name) is None:
            continue
        value = thaw(match[name])
        if name == "path" and isinstance(value, dict):
            value = {k: value[k] for k in _PATH_FIELDS if k in value}
        out[name] = value
    return out


def hash_matches(matches: Sequence[Mapping[str, Any]]) -> str:
    """Kuma's HashMatches: base64 of the SHA-256 of the matches' compact JSON."""
    text = json.dumps([_go_ordered(m) for m in matches], separators=(",", ":"), ensure_ascii=False)
    # Go's json.Marshal escapes HTML characters; the hash is of its bytes.
    text = text.replace("<", "\\u003c").replace(">", "\\u003e").replace("&", "\\u0026")
    return base64.b64encode(hashlib.sha256(text.encode()).digest()).decode()


def go_matches(matches: Sequence[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """The matches as Kuma writes them in `httpMatches` and route confs."""
    return [_go_ordered(m) for m in matches]
