"""The one ordered list of targetRef policy kinds, and the validation side of each.

`PLUGIN_ORDER` is Kuma's order of policy kinds: the order the generator applies their Envoy
effects in (it fixes the order of HTTP filters: fault injection before rate limit, both
before the router) and the order `inspect` lists them in. `policy_kinds()` gives every
policy's `KIND` (its `<kind>/validation.py`) to the kinds registry (reconciler.kinds).

This module imports only validation modules, never an Envoy effect: the validation side
stays below the mesh model and Envoy. Its generation-side twin, policies/plugins.py, gives
every `PLUGIN` in the same order. Adding a policy: a `<kind>/` package, one import and one
entry here, and, when it changes Envoy resources, one import in policies/plugins.py.
"""

from __future__ import annotations

from reconciler.kind import Kind
from reconciler.policies.meshaccesslog import validation as meshaccesslog
from reconciler.policies.meshcircuitbreaker import validation as meshcircuitbreaker
from reconciler.policies.meshfaultinjection import validation as meshfaultinjection
from reconciler.policies.meshhealthcheck import validation as meshhealthcheck
from reconciler.policies.meshhttproute import validation as meshhttproute
from reconciler.policies.meshloadbalancingstrategy import validation as meshloadbalancingstrategy
from reconciler.policies.meshmetric import validation as meshmetric
from reconciler.policies.meshpassthrough import validation as meshpassthrough
from reconciler.policies.meshproxypatch import validation as meshproxypatch
from reconciler.policies.meshratelimit import validation as meshratelimit
from reconciler.policies.meshretry import validation as meshretry
from reconciler.policies.meshtcproute import validation as meshtcproute
from reconciler.policies.meshtimeout import validation as meshtimeout
from reconciler.policies.meshtls import validation as meshtls
from reconciler.policies.meshtrace import validation as meshtrace
from reconciler.policies.meshtrafficpermission import validation as meshtrafficpermission

__all__ = ["PLUGIN_ORDER", "policy_kinds"]

_KINDS: tuple[Kind, ...] = (
    meshtrafficpermission.KIND,
    meshtls.KIND,
    meshtimeout.KIND,
    meshcircuitbreaker.KIND,
    meshhealthcheck.KIND,
    meshloadbalancingstrategy.KIND,
    meshretry.KIND,
    meshfaultinjection.KIND,
    meshratelimit.KIND,
    meshaccesslog.KIND,
    meshtrace.KIND,
    meshmetric.KIND,
    meshpassthrough.KIND,
    meshhttproute.KIND,
    meshtcproute.KIND,
    meshproxypatch.KIND,
)

PLUGIN_ORDER: tuple[str, ...] = tuple(kind.name for kind in _KINDS)
"""Kuma's order of policy kinds, in which their Envoy effects apply."""


def policy_kinds() -> tuple[Kind, ...]:
    """Every targetRef policy kind, in PLUGIN_ORDER."""
    return _KINDS
