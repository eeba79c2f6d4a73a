"""Which documents are resources: every kind's name, and the two facts reading a file needs.

The loader sits below `reconciler.kinds` (whose validators import the layers above source),
so it recognises documents from this table instead of the kind registry: a name, whether the
kind is global (takes no mesh) and whether its fields sit at the top level of the document
(Kuma's proto kinds) rather than under `spec`. The mesh model takes the targetRef policy kinds
from here too, so it needs neither the registry nor the policies' validators. `tests/kinds/test_kind_names.py` checks that
the registry and this table agree; a new kind is a line in each.
"""

from __future__ import annotations

__all__ = ["KIND_NAMES", "CORE_KIND_NAMES", "POLICY_KINDS", "GLOBAL_KINDS", "FLAT_KINDS"]

CORE_KIND_NAMES = frozenset(
    {
        "Mesh",
        "Dataplane",
        "MeshGateway",
        "ZoneIngress",
        "ZoneEgress",
        "Secret",
        "MeshService",
        "MeshExternalService",
        "MeshMultiZoneService",
        "HostnameGenerator",
        "MeshIdentity",
        "MeshTrust",
        "Workload",
        "MeshOpenTelemetryBackend",
    }
)
"""The kinds of reconciler.kinds: Kuma's core resources."""

GLOBAL_KINDS = frozenset({"Mesh", "ZoneIngress", "ZoneEgress", "HostnameGenerator"})
"""Kinds that take no mesh."""
FLAT_KINDS = frozenset({"Mesh", "Dataplane", "MeshGateway", "ZoneIngress", "ZoneEgress", "Secret"})
"""Kuma's proto kinds: their fields at the top level of a Universal document, not under `spec`."""
POLICY_KINDS = frozenset(
    {
        "MeshTrafficPermission",
        "MeshTimeout",
        "MeshRetry",
        "MeshCircuitBreaker",
        "MeshHealthCheck",
        "MeshHTTPRoute",
        "MeshTCPRoute",
        "MeshLoadBalancingStrategy",
        "MeshRateLimit",
        "MeshFaultInjection",
        "MeshAccessLog",
        "MeshMetric",
        "MeshTrace",
        "MeshTLS",
        "MeshPassthrough",
        "MeshProxyPatch",
    }
)
"""The targetRef policies (reconciler.policies): the kinds the targetRef engine matches."""
KIND_NAMES = CORE_KIND_NAMES | POLICY_KINDS
"""Every kind a document may have."""
