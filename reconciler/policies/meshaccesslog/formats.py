"""MeshAccessLog formats: Kuma's default lines and its `%KUMA_*%` placeholders.

Kuma resolves its own placeholders when it generates the config (Envoy never sees them), and
passes Envoy's command operators (`%START_TIME%`, `%REQ(...)%`, ...) through untouched. What a
placeholder becomes depends on where the log is written (Kuma v2.14.3, meshaccesslog plugin.go):

| placeholder | inbound | outbound | builtin gateway listener |
| --- | --- | --- | --- |
| `%KUMA_SOURCE_SERVICE%` | `unknown` | the proxy's service | the gateway's service (`to`), `unknown` (rules) |
| `%KUMA_DESTINATION_SERVICE%` | the inbound's service | the outbound's service | `*` (`to`), the gateway's service (rules) |
| `%KUMA_TRAFFIC_DIRECTION%` | `INBOUND` | `OUTBOUND` | `OUTBOUND` (`to`), `INBOUND` (rules) |
| `%KUMA_SOURCE_ADDRESS_WITHOUT_PORT%` | the proxy's address (all three) | | |
| `%KUMA_SOURCE_ADDRESS%` | the proxy's address and port 0 (all three) | | |
| `%KUMA_MESH%` | the mesh (all three) | | |

`%KUMA_ZONE%` and `%KUMA_WORKLOAD%` come from the Dataplane's `kuma.io/zone` and
`kuma.io/workload` labels in Kuma; a Universal zone without them (this project) writes "".

The Tcp backend's Unix socket name is here too, so the config (policies side) and the streamer
beside Envoy (reconciler/dataplane/accesslog_streamer.py) name the same file.
"""

from __future__ import annotations

from dataclasses import dataclass

from reconciler.policies.core.plugin import HookContext

__all__ = [
    "DEFAULT_HTTP_FORMAT",
    "DEFAULT_TCP_FORMAT",
    "KumaValues",
    "default_format",
    "interpolate",
    "kuma_values",
    "gateway_inbound_values",
    "socket_name",
    "HTTP_BASED",
]

DEFAULT_TCP_FORMAT = (
    "[%START_TIME%] %RESPONSE_FLAGS% %KUMA_MESH% %KUMA_SOURCE_ADDRESS_WITHOUT_PORT%(%KUMA_SOURCE_SERVICE%)"
    "->%UPSTREAM_HOST%(%KUMA_DESTINATION_SERVICE%) took %DURATION%ms, sent %BYTES_SENT% bytes, received: %BYTES_RECEIVED% bytes"
)
DEFAULT_HTTP_FORMAT = (
    '[%START_TIME%] %KUMA_MESH% "%REQ(:METHOD)% %REQ(X-ENVOY-ORIGINAL-PATH?:PATH)% %PROTOCOL%" %RESPONSE_CODE% '
    "%RESPONSE_FLAGS% %BYTES_RECEIVED% %BYTES_SENT% %DURATION% %RESP(X-ENVOY-UPSTREAM-SERVICE-TIME)% "
    '"%REQ(X-FORWARDED-FOR)%" "%REQ(USER-AGENT)%" "%REQ(X-B3-TRACEID?X-DATADOG-TRACEID)%" "%REQ(X-REQUEST-ID)%" '
    '"%REQ(:AUTHORITY)%" "%KUMA_SOURCE_SERVICE%" "%KUMA_DESTINATION_SERVICE%" "%KUMA_SOURCE_ADDRESS_WITHOUT_PORT%" '
    '"%UPSTREAM_HOST%"'
)
HTTP_BASED = frozenset({"http", "http2", "grpc"})
UNKNOWN_SERVICE = "unknown"
"""Kuma's `mesh_proto.ServiceUnknown`: an inbound does not know who called it."""
MATCH_ALL = "*"


@dataclass(frozen=True, slots=True)
class KumaValues:
    source_service: str
    source_ip: str
    destination_service: str
    mesh: str
    direction: str
    zone: str = ""
    workload: str = ""


def default_format(protocol: str) -> str:
    """Kuma's DefaultFormat: the HTTP line for HTTP-based protocols, the TCP line otherwise."""
    return DEFAULT_HTTP_FORMAT if protocol in HTTP_BASED else DEFAULT_TCP_FORMAT


def _join_host_port(host: str, port: str) -> str:
    # Go's net.JoinHostPort brackets IPv6 addresses.
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


def interpolate(text: str, values: KumaValues) -> str:
    """Kuma's InterpolateKumaValues, in its order (so `%KUMA_SOURCE_ADDRESS%` is replaced before
    the longer `%KUMA_SOURCE_ADDRESS_WITHOUT_PORT%` could be, which it cannot match)."""
    text = text.replace("%KUMA_SOURCE_ADDRESS%", _join_host_port(values.source_ip, "0"))
    text = text.replace("%KUMA_SOURCE_ADDRESS_WITHOUT_PORT%", values.source_ip)
    text = text.replace("%KUMA_SOURCE_SERVICE%", values.source_service)
    text = text.replace("%KUMA_DESTINATION_SERVICE%", values.destination_service)
    text = text.replace("%KUMA_MESH%", values.mesh)
    text = text.replace("%KUMA_TRAFFIC_DIRECTION%", values.direction)
    text = text.replace("%KUMA_ZONE%", values.zone)
    return text.replace("%KUMA_WORKLOAD%", values.workload)


def kuma_values(ctx: HookContext) -> KumaValues:
    """The placeholders' values where a hook runs (see the table above)."""
    proxy = ctx.proxy
    mesh = ctx.mesh or (proxy.mesh if proxy is not None else "")
    address = proxy.address if proxy is not None else ""
    own = proxy.service if proxy is not None else ""
    if ctx.gateway:
        # Kuma logs a gateway listener from its `to` rules: outbound traffic to anything.
        return KumaValues(own, address, MATCH_ALL, mesh, "OUTBOUND")
    if ctx.direction == "inbound":
        return KumaValues(UNKNOWN_SERVICE, address, ctx.service, mesh, "INBOUND")
    return KumaValues(own, address, ctx.service, mesh, "OUTBOUND")


def gateway_inbound_values(ctx: HookContext) -> KumaValues:
    """A builtin gateway listener logging from its inbound rules: traffic into the gateway."""
    proxy = ctx.proxy
    mesh = ctx.mesh or (proxy.mesh if proxy is not None else "")
    address = proxy.address if proxy is not None else ""
    return KumaValues(UNKNOWN_SERVICE, address, proxy.service if proxy is not None else "", mesh, "INBOUND")


def socket_name(name: str, mesh: str) -> str:
    """Kuma's AccessLogSocketName, relative to the work directory: `kuma-al-<name>-<mesh>`
    cut to 98 characters (Unix socket paths are short), then `.sock`."""
    return f"kuma-al-{name}-{mesh}"[:98] + ".sock"
