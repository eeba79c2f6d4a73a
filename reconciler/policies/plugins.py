"""The generation side of the policy registry: every policy's `PLUGIN`, in the registry's order.

Only the policies that change Envoy resources have an `envoy.py`; the others (MeshHTTPRoute
and MeshTCPRoute, whose rules the generator turns into routes itself, and the policies that
are only validated so far) have no plugin. The order comes from policies/registry.py, so the
two sides cannot disagree on it.
"""

from __future__ import annotations

from reconciler.policies.core.plugin import Plugin
from reconciler.policies.meshaccesslog import envoy as meshaccesslog
from reconciler.policies.meshcircuitbreaker import envoy as meshcircuitbreaker
from reconciler.policies.meshfaultinjection import envoy as meshfaultinjection
from reconciler.policies.meshhealthcheck import envoy as meshhealthcheck
from reconciler.policies.meshloadbalancingstrategy import envoy as meshloadbalancingstrategy
from reconciler.policies.meshmetric import envoy as meshmetric
from reconciler.policies.meshpassthrough import envoy as meshpassthrough
from reconciler.policies.meshproxypatch import envoy as meshproxypatch
from reconciler.policies.meshratelimit import envoy as meshratelimit
from reconciler.policies.meshretry import envoy as meshretry
from reconciler.policies.meshtimeout import envoy as meshtimeout
from reconciler.policies.meshtls import envoy as meshtls
from reconciler.policies.meshtrace import envoy as meshtrace
from reconciler.policies.meshtrafficpermission import envoy as meshtrafficpermission
from reconciler.policies.registry import PLUGIN_ORDER

__all__ = ["plugins"]

_BY_KIND: dict[str, Plugin] = {
    plugin.kind: plugin
    for plugin in (
        meshtrafficpermission.PLUGIN,
        meshtls.PLUGIN,
        meshtimeout.PLUGIN,
        meshcircuitbreaker.PLUGIN,
        meshhealthcheck.PLUGIN,
        meshloadbalancingstrategy.PLUGIN,
        meshretry.PLUGIN,
        meshfaultinjection.PLUGIN,
        meshratelimit.PLUGIN,
        meshproxypatch.PLUGIN,
        meshtrace.PLUGIN,
        meshmetric.PLUGIN,
        meshaccesslog.PLUGIN,
        meshpassthrough.PLUGIN,
    )
}

_PLUGINS: tuple[Plugin, ...] = tuple(_BY_KIND[kind] for kind in PLUGIN_ORDER if kind in _BY_KIND)


def plugins() -> tuple[Plugin, ...]:
    """The `PLUGIN` of every policy that has one, in PLUGIN_ORDER."""
    return _PLUGINS
