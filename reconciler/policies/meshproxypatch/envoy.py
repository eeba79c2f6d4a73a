"""MeshProxyPatch's effect on Envoy: its modifications applied to one proxy's generated resources.

Follows Kuma v2.14 (`pkg/plugins/policies/meshproxypatch/plugin/v1alpha1/`). The conf is the
merged top-level `default` of the MeshProxyPatches selecting the proxy: their
`appendModifications` concatenated in policy order (least specific first). It is applied
after every other policy, on the finished resources (`apply_modifications`, called by the
generator), one modification after the other, each seeing the result of the ones before:

- `cluster` / `listener`: `Add` puts the `value` in (replacing one of the same name), `Remove`
  drops the matched ones, `Patch` merges `value` into them or applies `jsonPatches`.
  A cluster matches by `name` and `origin`, a listener by `name`, `origin` and `tags`
  (the listener's `io.kuma.tags` metadata, `*` for any value).
- `networkFilter` / `httpFilter`: in every filter chain of the matched listeners
  (`listenerName`, `origin`, `listenerTags`), and for HTTP filters in every HTTP connection
  manager of those chains, `AddFirst` / `AddLast` / `AddBefore` / `AddAfter` (the filter named
  `match.name`) insert the `value`, `Remove` drops the filters named `match.name` (all without
  it), `Patch` merges into their `typedConfig` (same type only) or applies `jsonPatches` to it.
- `virtualHost`: in the route configurations carried inline by the HTTP connection managers of
  the listeners of `origin` (`routeConfigurationName` narrows them), `Add` appends a virtual
  host, `Remove` drops the matched ones (`name`), `Patch` merges or JSON-patches them. Route
  tables served over RDS (the builtin gateway's) are not touched, as in Kuma.

No `match` matches everything. Resources carry Kuma's origins (`inbound`, `outbound`,
`gateway`, `secrets`; added clusters `proxy-template-modifications`, added listeners
`mesh-proxy-patch`). A modification that cannot be applied (a `value` that is not the
message it names, a Patch of a filter of another type, a JSON patch whose path does not
exist) is skipped and reported; Kuma would refuse the proxy's new config instead.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from envoy.config.cluster.v3 import cluster_pb2
from envoy.config.listener.v3 import listener_components_pb2, listener_pb2
from envoy.config.route.v3 import route_components_pb2, route_pb2
from envoy.extensions.filters.network.http_connection_manager.v3 import http_connection_manager_pb2 as hcm_pb2
from google.protobuf.message import Message

from reconciler.policies.core.plugin import Plugin
from reconciler.policies.meshproxypatch.envoyjson import PatchError, from_yaml, json_patch, json_patch_any, merge, merge_anys, pack_any
from reconciler.xds_types import CLUSTER, LISTENER

__all__ = ["PLUGIN", "KIND", "Generated", "apply_modifications", "ORIGIN_ADDED_CLUSTER", "ORIGIN_ADDED_LISTENER"]

KIND = "MeshProxyPatch"
ORIGIN_ADDED_CLUSTER = "proxy-template-modifications"
ORIGIN_ADDED_LISTENER = "mesh-proxy-patch"
HCM_NAME = "envoy.filters.network.http_connection_manager"
_TAGS_METADATA = "io.kuma.tags"


@dataclass(slots=True)
class Generated:
    """One generated resource as a modification sees it: its message and Kuma's origin."""

    type_url: str
    name: str
    origin: str
    source: Message | Callable[[], Message]
    """The message, or how to decode it: only resources a modification matches are decoded."""
    changed: bool = field(default=False)
    """Whether a modification touched it (untouched ones keep their serialized form)."""
    tags: Mapping[str, str] | None = None
    """A listener's tags when its message does not carry them: Kuma puts an outbound's tags in
    its listener's `io.kuma.tags` metadata; ours leave them out so that they fold into the
    compact listener, and the generator passes them here instead."""

    @property
    def message(self) -> Message:
        if not isinstance(self.source, Message):
            self.source = self.source()
        return self.source


Resources = dict[tuple[str, str], Generated]


def apply_modifications(conf: Mapping[str, Any], resources: Iterable[Generated]) -> tuple[list[Generated], list[str]]:
    """The resources after every modification of `conf` (a merged MeshProxyPatch `default`),
    and one line per modification skipped because it could not be applied."""
    current: Resources = {(r.type_url, r.name): r for r in resources}
    problems = []
    for i, mod in enumerate(conf.get("appendModifications") or ()):
        kind = next((k for k in _APPLY if isinstance(mod, Mapping) and mod.get(k) is not None), None)
        if kind is None:
            continue
        body = mod[kind]
        try:
            current = _APPLY[kind](body, current)
        except (ValueError, TypeError) as e:  # PatchError, and protobuf's own complaints about a value
            problems.append(f"modification {i} ({kind} {body.get('operation')}) skipped: {e}")
    return list(current.values()), problems


def _match(body: Mapping[str, Any]) -> Mapping[str, Any]:
    return body.get("match") or {}


def _value(body: Mapping[str, Any], message_type: type[Message]) -> Message:
    value = body.get("value")
    return from_yaml(value, message_type) if isinstance(value, str) else message_type()


def _patch(target: Message, body: Mapping[str, Any], value: Message) -> None:
    if body.get("jsonPatches"):
        json_patch(target, body["jsonPatches"])
    else:
        merge(target, value)


def _copy(r: Generated) -> Generated:
    message = type(r.message)()
    message.CopyFrom(r.message)
    return Generated(r.type_url, r.name, r.origin, message, True, r.tags)


def _of_type(current: Resources, type_url: str) -> list[Generated]:
    return [r for r in current.values() if r.type_url == type_url]


def _modify(current: Resources, type_url: str, matches: Callable[[Generated], bool], change: Callable[[Generated], None]) -> Resources:
    """`current` with each matched resource of `type_url` replaced by a changed copy; nothing
    changes if one change fails."""
    out = dict(current)
    for r in _of_type(current, type_url):
        if matches(r):
            copy = _copy(r)
            change(copy)
            if copy.message != r.message:
                out[(type_url, r.name)] = copy
    return out


def _resource_mod(
    type_url: str, message_type: type[Message], added_origin: str, matches: Callable[[Mapping[str, Any], Generated], bool]
) -> Any:
    def apply(body: Mapping[str, Any], current: Resources) -> Resources:
        value = _value(body, message_type)
        operation, match = body.get("operation"), _match(body)
        if operation == "Add":
            name = str(getattr(value, "name", ""))
            return {**current, (type_url, name): Generated(type_url, name, added_origin, value, True)}
        if operation == "Remove":
            return {k: r for k, r in current.items() if r.type_url != type_url or not matches(match, r)}
        if operation == "Patch":
            return _modify(current, type_url, lambda r: matches(match, r), lambda r: _patch(r.message, body, value))
        raise PatchError(f"invalid operation: {operation}")

    return apply


def _cluster_matches(match: Mapping[str, Any], r: Generated) -> bool:
    return _is(match.get("name"), r.name) and _is(match.get("origin"), r.origin)


_SAME_LISTENER = {
    frozenset((f"{direction}:passthrough:ipv{v}", f"self_transparentproxy_passthrough_{direction}_ipv{v}"))
    for direction in ("inbound", "outbound")
    for v in (4, 6)
}
"""Kuma's legacy and unified names of its transparent-proxy listeners: a patch naming either
matches both (this control plane generates the legacy names, xds/generate/transparent.py)."""


def _listener_name_is(wanted: Any, actual: str) -> bool:
    return wanted is None or wanted == actual or frozenset((wanted, actual)) in _SAME_LISTENER


def _listener_matches(match: Mapping[str, Any], r: Generated, name_key: str = "name", tags_key: str = "tags") -> bool:
    if not (_listener_name_is(match.get(name_key), r.name) and _is(match.get("origin"), r.origin)):
        return False
    selector = match.get(tags_key) or {}
    if not selector:
        return True
    if r.tags is not None:
        have = dict(r.tags)
    else:
        assert isinstance(r.message, listener_pb2.Listener)
        tags = r.message.metadata.filter_metadata.get(_TAGS_METADATA)
        have = {k: v.string_value for k, v in tags.fields.items()} if tags is not None else {}
    return all(k in have and (v == "*" or have[k] == v) for k, v in selector.items())


def _is(wanted: Any, actual: str) -> bool:
    return wanted is None or wanted == actual


def _filter_listener_matches(match: Mapping[str, Any], r: Generated) -> bool:
    return _listener_matches(match, r, "listenerName", "listenerTags")


def _filters_in(filters: Any, match: Mapping[str, Any], body: Mapping[str, Any], value: Message) -> None:
    """One filter list (a chain's network filters or an HCM's HTTP filters) changed in place."""
    operation, name = body.get("operation"), match.get("name")
    items = list(filters)
    position = next((i for i, f in enumerate(items) if name is not None and f.name == name), -1)
    fresh = type(value)()
    fresh.CopyFrom(value)
    if operation == "AddFirst":
        items.insert(0, fresh)
    elif operation == "AddLast":
        items.append(fresh)
    elif operation == "AddBefore":
        if position >= 0:
            items.insert(position, fresh)
    elif operation == "AddAfter":
        if position >= 0:
            items.insert(position + 1, fresh)
    elif operation == "Remove":
        items = [f for f in items if not _is(name, f.name)]
    elif operation == "Patch":
        for f in items:
            if _is(name, f.name):
                patches = body.get("jsonPatches")
                src = getattr(value, "typed_config")  # noqa: B009 (Filter and HttpFilter both have it)
                f.typed_config.CopyFrom(json_patch_any(f.typed_config, patches) if patches else merge_anys(f.typed_config, src))
    else:
        raise PatchError(f"invalid operation: {operation}")
    copies = []
    for item in items:
        copy = type(item)()
        copy.CopyFrom(item)
        copies.append(copy)
    del filters[:]
    filters.extend(copies)


def _network_filter_mod(body: Mapping[str, Any], current: Resources) -> Resources:
    value = _value(body, listener_components_pb2.Filter)
    match = _match(body)

    def change(r: Generated) -> None:
        assert isinstance(r.message, listener_pb2.Listener)
        for chain in r.message.filter_chains:
            _filters_in(chain.filters, match, body, value)

    return _modify(current, LISTENER, lambda r: _filter_listener_matches(match, r), change)


def _each_hcm(listener: Message, change: Callable[[hcm_pb2.HttpConnectionManager], None]) -> None:
    assert isinstance(listener, listener_pb2.Listener)
    for chain in listener.filter_chains:
        for network_filter in chain.filters:
            if network_filter.name != HCM_NAME or not network_filter.HasField("typed_config"):
                continue
            hcm = hcm_pb2.HttpConnectionManager()
            if not network_filter.typed_config.Unpack(hcm):
                raise PatchError(f"{HCM_NAME} of listener {listener.name} holds a {network_filter.typed_config.type_url}")
            original = hcm_pb2.HttpConnectionManager()
            original.CopyFrom(hcm)
            change(hcm)
            if hcm != original:
                network_filter.typed_config.CopyFrom(pack_any(hcm))


def _http_filter_mod(body: Mapping[str, Any], current: Resources) -> Resources:
    value = _value(body, hcm_pb2.HttpFilter)
    match = _match(body)

    def change(r: Generated) -> None:
        _each_hcm(r.message, lambda hcm: _filters_in(hcm.http_filters, match, body, value))

    return _modify(current, LISTENER, lambda r: _filter_listener_matches(match, r), change)


def _virtual_host_mod(body: Mapping[str, Any], current: Resources) -> Resources:
    value = _value(body, route_components_pb2.VirtualHost)
    match, operation = _match(body), body.get("operation")
    if operation not in ("Add", "Remove", "Patch"):
        raise PatchError(f"invalid operation: {operation}")

    def in_routes(routes: route_pb2.RouteConfiguration) -> None:
        if not _is(match.get("routeConfigurationName"), routes.name):
            return
        if operation == "Add":
            routes.virtual_hosts.add().CopyFrom(value)
        elif operation == "Remove":
            kept = [v for v in routes.virtual_hosts if not _is(match.get("name"), v.name)]
            copies = [route_components_pb2.VirtualHost() for _ in kept]
            for copy, v in zip(copies, kept, strict=True):
                copy.CopyFrom(v)
            del routes.virtual_hosts[:]
            routes.virtual_hosts.extend(copies)
        else:
            for vhost in routes.virtual_hosts:
                if _is(match.get("name"), vhost.name):
                    _patch(vhost, body, value)

    def change(r: Generated) -> None:
        # Only HCMs carrying their routes inline: RDS tables are separate resources (Kuma too).
        _each_hcm(r.message, lambda hcm: in_routes(hcm.route_config) if hcm.HasField("route_config") else None)

    return _modify(current, LISTENER, lambda r: _is(match.get("origin"), r.origin), change)


_APPLY: dict[str, Callable[[Mapping[str, Any], Resources], Resources]] = {
    "cluster": _resource_mod(CLUSTER, cluster_pb2.Cluster, ORIGIN_ADDED_CLUSTER, _cluster_matches),
    "listener": _resource_mod(LISTENER, listener_pb2.Listener, ORIGIN_ADDED_LISTENER, _listener_matches),
    "networkFilter": _network_filter_mod,
    "httpFilter": _http_filter_mod,
    "virtualHost": _virtual_host_mod,
}

PLUGIN = Plugin(kind=KIND, inbound=False, outbound=False)
"""No hook while resources are built: its conf is proxy-wide and applied to the finished
resources (`apply_modifications`), after every other policy."""
