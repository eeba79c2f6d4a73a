"""MeshTrace's effect on Envoy: distributed tracing on every HTTP connection manager of a proxy.

Follows Kuma v2.14 (`pkg/plugins/policies/meshtrace/plugin/{v1alpha1,xds}`). MeshTrace has
only a top-level `default`, so the conf is the proxy's merged `default` (a proxy-wide plugin,
views/proxy.py) and the same tracing goes on every inbound and outbound HCM and on each
builtin gateway listener's HCM (views/gateway_policies.py gives the gateway listeners the
proxy-wide conf). TCP listeners are untouched. With a backend, the HCM gets `tracing`:

- `spawn_upstream_span`: true on a builtin gateway only (it has no outbound sidecar span);
- `overall_sampling`, `client_sampling`, `random_sampling` from `sampling` (ints or decimal
  strings, percent); unset ones stay unset, i.e. Envoy's default of 100 %;
- `custom_tags`: `tags` in order (a literal, or a request header with its `default`), then
  `kuma.mesh` and `kuma.zone` literals unless a tag of that name is already there;
- `provider`: the backend's tracer (backends.py).

The proxy adds one collector cluster for the backend (`proxy_resources`). `backends: []` turns
tracing off. The tracer names the proxy's service (OpenTelemetry, Datadog) and an OpenTelemetry
`backendRef` is resolved against the mesh's MeshOpenTelemetryBackends (ProxyFacts), so with
those tracers the plugin is per proxy (HookContext.proxy); Zipkin's tracer names nothing of the
proxy, so Zipkin tracing stays shared by proxies alike (`_names_the_proxy`). A `backendRef`
selecting none configures nothing, as Kuma skips a backend it cannot resolve.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from decimal import Decimal, InvalidOperation
from typing import Any

from envoy.extensions.filters.network.http_connection_manager.v3 import http_connection_manager_pb2 as hcm_pb2
from envoy.type.tracing.v3 import custom_tag_pb2
from envoy.type.v3 import percent_pb2
from google.protobuf import wrappers_pb2

from reconciler.policies.core.plugin import HookContext, Plugin, ProxyFacts
from reconciler.policies.meshtrace.backends import backend_of, collector, collector_cluster, provider
from reconciler.xds_types import CLUSTER

__all__ = ["PLUGIN", "KIND", "ZONE", "tracing", "configure_http_connection_manager", "proxy_resources"]

KIND = "MeshTrace"
ZONE = "default"
"""The zone every proxy of this control plane is in: Kuma's zone name (`multizone.zone.name`,
"default") of a standalone control plane, the value of the `kuma.zone` tag."""


def _percent(value: Any) -> percent_pb2.Percent | None:
    try:
        return percent_pb2.Percent(value=float(Decimal(str(value))))
    except (InvalidOperation, ValueError):
        return None  # validation rejects it; nothing to configure


def _custom_tags(tags: Iterable[Any]) -> list[custom_tag_pb2.CustomTag]:
    out = []
    for tag in tags:
        if not isinstance(tag, Mapping):
            continue
        header = tag.get("header")
        if isinstance(header, Mapping):
            out.append(
                custom_tag_pb2.CustomTag(
                    tag=str(tag.get("name", "")),
                    request_header=custom_tag_pb2.CustomTag.Header(
                        name=str(header.get("name", "")), default_value=str(header.get("default") or "")
                    ),
                )
            )
        else:
            out.append(
                custom_tag_pb2.CustomTag(
                    tag=str(tag.get("name", "")), literal=custom_tag_pb2.CustomTag.Literal(value=str(tag.get("literal") or ""))
                )
            )
    return out


def tracing(
    conf: Mapping[str, Any], *, mesh: str, service: str, direction: str, destination: str, gateway: bool, facts: ProxyFacts | None = None
) -> hcm_pb2.HttpConnectionManager.Tracing | None:
    """The HCM's `tracing` for a MeshTrace conf, or None when it traces nothing."""
    backend = backend_of(conf)
    if backend is None:
        return None
    tracer = provider(backend, service=service, direction=direction, destination=destination, gateway=gateway, facts=facts)
    if tracer is None:
        return None  # Kuma skips an OpenTelemetry backend it cannot resolve
    out = hcm_pb2.HttpConnectionManager.Tracing(spawn_upstream_span=wrappers_pb2.BoolValue(value=gateway))
    sampling = conf.get("sampling")
    if isinstance(sampling, Mapping):
        for key, field in (("overall", "overall_sampling"), ("client", "client_sampling"), ("random", "random_sampling")):
            if sampling.get(key) is not None and (percent := _percent(sampling[key])) is not None:
                getattr(out, field).CopyFrom(percent)
    out.custom_tags.extend(_custom_tags(conf.get("tags") or ()))
    for name, value in (("kuma.mesh", mesh), ("kuma.zone", ZONE)):
        if value and all(t.tag != name for t in out.custom_tags):
            out.custom_tags.append(custom_tag_pb2.CustomTag(tag=name, literal=custom_tag_pb2.CustomTag.Literal(value=value)))
    out.provider.CopyFrom(tracer)
    return out


def configure_http_connection_manager(hcm: hcm_pb2.HttpConnectionManager, conf: Mapping[str, Any], ctx: HookContext) -> None:
    facts = ctx.proxy
    built = tracing(
        conf,
        mesh=ctx.mesh or (facts.mesh if facts else ""),
        service=facts.service if facts else "",
        direction=ctx.direction,
        # Datadog's split service names the destination of an outbound (Kuma: its kuma.io/service).
        destination=ctx.service if ctx.direction == "outbound" else "",
        gateway=ctx.gateway,
        facts=facts,
    )
    if built is not None:
        hcm.tracing.CopyFrom(built)


def proxy_resources(
    proxy_conf: Mapping[str, Any] | None, every_conf: Sequence[Mapping[str, Any]], facts: ProxyFacts
) -> list[tuple[str, str, Any]]:
    """The collector cluster of the proxy's backend (Kuma adds it once per proxy)."""
    backend = backend_of(proxy_conf)
    target = collector(backend, facts) if backend is not None else None
    if target is None:
        return []
    cluster = collector_cluster(target)
    return [(CLUSTER, cluster.name, cluster)]


def _names_the_proxy(conf: Mapping[str, Any]) -> bool:
    """OpenTelemetry and Datadog tracers name the proxy's service (and a `backendRef` may default
    to its address); Zipkin's does not, so Zipkin tracing is shared by proxies alike."""
    backend = backend_of(conf)
    return backend is not None and str(backend.get("type") or "") != "Zipkin"


PLUGIN = Plugin(
    kind=KIND,
    http_connection_manager=configure_http_connection_manager,
    inbound=False,
    outbound=False,
    proxy_wide=True,
    per_proxy=_names_the_proxy,
    proxy_resources=proxy_resources,
)
"""Tracing on every HTTP connection manager of the proxy, and its collector cluster."""
