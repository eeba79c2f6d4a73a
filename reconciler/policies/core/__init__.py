"""What every policy builds on: the targetRef engine and the shared pieces.

`targetref.py` holds the validation helpers every policy's checks use (targetRef kinds by
role, matches, deprecations); `match.py` selects the policies that apply to a proxy and one of
its inbounds, outbounds or routes and merges their confs, as Kuma's rules engine does;
`route_rules.py` merges MeshHTTPRoute and MeshTCPRoute rules into routes; `plugin.py`
declares what a policy's Envoy effect looks like (`Plugin`, `HookContext`). Nothing here
imports a policy package: the policies import core, the registries import the policies.
"""
