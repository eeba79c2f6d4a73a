"""MeshHTTPRoute: HTTP routing: matches, filters and weighted backends per destination.

`validation.py` exports `KIND`, the semantic checks beyond its JSON schema (schemas/MeshHTTPRoute.json).
It has no `envoy.py`: its rules are merged by the targetRef engine (core/route_rules.py) and become
routes in the generator (xds/generate). No default policy.
See golden files in tests/policies/meshhttproute/ and its entry in docs/policies.md.
"""
