"""What Kuma's API server knows about each resource kind: the facts of its
ResourceTypeDescriptor (v2.14.3) that the API shows: the path segment (`WsPath`), scope,
display names, whether the kind goes from global to zones (`includeInFederation`) and, for a
policy, which targetRef sections it has.

The kinds themselves come from the project's registry (reconciler.kinds); this table adds
Kuma's naming. tests/api/kuma/test_resources.py checks that every kind of the registry has a
row here, so a new kind cannot be left out of the API silently.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from functools import cache

from reconciler.kinds import all_kinds

__all__ = ["KindDescriptor", "PolicyFlags", "descriptors", "by_path", "descriptor_of"]


@dataclass(frozen=True, slots=True)
class PolicyFlags:
    to: bool
    from_: bool
    rules: bool
    from_as_rules: bool


@dataclass(frozen=True, slots=True)
class KindDescriptor:
    name: str
    path: str
    """Kuma's WsPath: `/meshes/{mesh}/<path>` for mesh-scoped kinds, `/<path>` for global ones."""
    scope: str
    singular: str
    plural: str
    short_name: str
    flat: bool
    """Kuma's proto kinds: their fields sit at the top level of an item, beside `type` and `name`."""
    federated: bool
    """KDS sends it from global to zones: Kuma's `includeInFederation`."""
    policy: PolicyFlags | None = None
    alternative_path: str = ""

    @property
    def global_scope(self) -> bool:
        return self.scope == "Global"


# name: (path, singular display name, plural display name, federated, policy flags (to, from, rules, fromAsRules))
_KUMA: dict[str, tuple[str, str, str, bool, tuple[bool, bool, bool, bool] | None]] = {
    "Mesh": ("meshes", "Mesh", "Meshes", True, None),
    "Dataplane": ("dataplanes", "Dataplane", "Dataplanes", False, None),
    "MeshGateway": ("meshgateways", "Mesh Gateway", "Mesh Gateways", True, None),
    "ZoneIngress": ("zoneingresses", "Zone Ingress", "Zone Ingresses", False, None),
    "ZoneEgress": ("zoneegresses", "Zone Egress", "Zone Egresses", False, None),
    "Secret": ("secrets", "Secret", "Secrets", True, None),
    "MeshService": ("meshservices", "Mesh Service", "Mesh Services", False, None),
    "MeshExternalService": ("meshexternalservices", "Mesh External Service", "Mesh External Services", True, None),
    "MeshMultiZoneService": ("meshmultizoneservices", "Mesh Multi Zone Service", "Mesh Multi Zone Services", True, None),
    "HostnameGenerator": ("hostnamegenerators", "Hostname Generator", "Hostname Generators", True, None),
    "MeshIdentity": ("meshidentities", "Mesh Identity", "Mesh Identities", True, None),
    "MeshTrust": ("meshtrusts", "Mesh Trust", "Mesh Trusts", True, None),
    "Workload": ("workloads", "Workload", "Workloads", False, None),
    "MeshOpenTelemetryBackend": ("meshopentelemetrybackends", "Mesh OpenTelemetry Backend", "Mesh OpenTelemetry Backends", True, None),
    "MeshAccessLog": ("meshaccesslogs", "Mesh Access Log", "Mesh Access Logs", True, (True, True, True, True)),
    "MeshCircuitBreaker": ("meshcircuitbreakers", "Mesh Circuit Breaker", "Mesh Circuit Breakers", True, (True, True, True, True)),
    "MeshFaultInjection": ("meshfaultinjections", "Mesh Fault Injection", "Mesh Fault Injections", True, (True, True, True, False)),
    "MeshHealthCheck": ("meshhealthchecks", "Mesh Health Check", "Mesh Health Checks", True, (True, False, False, False)),
    "MeshHTTPRoute": ("meshhttproutes", "Mesh HTTP Route", "Mesh HTTP Routes", True, (True, False, False, False)),
    "MeshLoadBalancingStrategy": (
        "meshloadbalancingstrategies",
        "Mesh Load Balancing Strategy",
        "Mesh Load Balancing Strategies",
        True,
        (True, False, False, False),
    ),
    "MeshMetric": ("meshmetrics", "Mesh Metric", "Mesh Metrics", True, (False, False, False, False)),
    "MeshPassthrough": ("meshpassthroughs", "Mesh Passthrough", "Mesh Passthroughs", True, (False, False, False, False)),
    "MeshProxyPatch": ("meshproxypatches", "Mesh Proxy Patch", "Mesh Proxy Patches", True, (False, False, False, False)),
    "MeshRateLimit": ("meshratelimits", "Mesh Rate Limit", "Mesh Rate Limits", True, (True, True, True, True)),
    "MeshRetry": ("meshretries", "Mesh Retry", "Mesh Retries", True, (True, False, False, False)),
    "MeshTCPRoute": ("meshtcproutes", "Mesh TCP Route", "Mesh TCP Routes", True, (True, False, False, False)),
    "MeshTimeout": ("meshtimeouts", "Mesh Timeout", "Mesh Timeouts", True, (True, True, True, True)),
    "MeshTLS": ("meshtlses", "Mesh TLS", "Mesh TLSes", True, (False, True, True, True)),
    "MeshTrace": ("meshtraces", "Mesh Trace", "Mesh Traces", True, (False, False, False, False)),
    "MeshTrafficPermission": (
        "meshtrafficpermissions",
        "Mesh Traffic Permission",
        "Mesh Traffic Permissions",
        True,
        (False, True, True, False),
    ),
}

_ALTERNATIVE_PATHS = {"ZoneIngress": "zone-ingresses"}


@cache
def descriptors() -> tuple[KindDescriptor, ...]:
    """Every kind the project knows, in Kuma's order of `/_resources` (by name)."""
    out = []
    for kind in all_kinds().values():
        if kind.name not in _KUMA:
            continue  # tests/api/kuma/test_resources.py fails on such a kind
        path, singular, plural, federated, flags = _KUMA[kind.name]
        out.append(
            KindDescriptor(
                name=kind.name,
                path=path,
                scope=kind.scope,
                singular=singular,
                plural=plural,
                short_name=kind.short_name,
                flat=kind.flat,
                federated=federated,
                policy=PolicyFlags(*flags) if kind.policy and flags is not None else None,
                alternative_path=_ALTERNATIVE_PATHS.get(kind.name, ""),
            )
        )
    return tuple(sorted(out, key=lambda d: d.name))


@cache
def by_path() -> Mapping[str, KindDescriptor]:
    """Kinds by path segment, the alternative ones (`zone-ingresses`) too."""
    out = {d.path: d for d in descriptors()}
    out.update({d.alternative_path: d for d in descriptors() if d.alternative_path})
    return out


def descriptor_of(kind: str) -> KindDescriptor | None:
    return next((d for d in descriptors() if d.name == kind), None)
