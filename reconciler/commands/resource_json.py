"""Envoy JSON of generated resources, computed once per distinct resource for a whole plan.

Generated resources are content-addressed and shared: the cluster of a service is one object
in the config of every proxy that calls it. Turning a resource into Envoy's JSON (a protobuf
round trip) is what a plan of thousands of proxies spends most of its time on, so `plan` asks
this cache instead: the JSON for a resource's (type, name, version) is computed once, and the
field-level diff between two versions of a resource too. The JSON is shared: read it, never
change it.
"""

from __future__ import annotations

from typing import Any

from reconciler.diff import FieldChange, diff_documents
from reconciler.xds.resources import ProxyResources, XdsResource

__all__ = ["ResourceJson"]

_Key = tuple[str, str, str]


class ResourceJson:
    """The JSON of resources, their redacted JSON and field diffs, each computed once."""

    def __init__(self) -> None:
        self._plain: dict[_Key, dict[str, Any]] = {}
        self._public: dict[_Key, dict[str, Any]] = {}
        self._fields: dict[tuple[_Key, str], tuple[FieldChange, ...]] = {}

    def plain(self, r: XdsResource) -> dict[str, Any]:
        key = (r.type_url, r.name, r.version)
        doc = self._plain.get(key)
        if doc is None:
            doc = self._plain[key] = XdsResource.to_dict(r)
        return doc

    def public(self, r: XdsResource) -> dict[str, Any]:
        """`XdsResource.public_dict`, once."""
        key = (r.type_url, r.name, r.version)
        doc = self._public.get(key)
        if doc is None:
            doc = self._public[key] = r.public_dict()
        return doc

    def fields(self, old: XdsResource, new: XdsResource) -> tuple[FieldChange, ...]:
        """The field changes from `old` to `new` (two versions of one resource), redacted."""
        key = ((old.type_url, old.name, old.version), new.version)
        out = self._fields.get(key)
        if out is None:
            out = self._fields[key] = tuple(diff_documents(self.public(old), self.public(new)))
        return out

    def resources(self, config: ProxyResources) -> ProxyResources:
        """`config` with resources whose `to_dict` (and so `public_dict`) asks this cache."""
        by_type = {t: {name: _Cached.of(r, self) for name, r in items.items()} for t, items in config.by_type.items()}
        return ProxyResources(by_type, config.problems)


class _Cached(XdsResource):
    """An XdsResource whose JSON comes from a `ResourceJson` (it is the same value)."""

    __slots__ = ("_json",)
    _json: ResourceJson

    @classmethod
    def of(cls, r: XdsResource, cache: ResourceJson) -> _Cached:
        out = cls(r.type_url, r.name, r.version, r.payload, r.by_name_only)
        object.__setattr__(out, "_json", cache)
        return out

    def to_dict(self) -> dict[str, Any]:
        return self._json.plain(self)
