"""MeshTCPRoute: TCP routing: weighted backends per destination.

`validation.py` exports `KIND`, the semantic checks beyond its JSON schema (schemas/MeshTCPRoute.json).
It has no `envoy.py`: core/route_rules.py merges its backends and the generator builds the TCP proxies.
No default policy.
See its entry in docs/policies.md.
"""
