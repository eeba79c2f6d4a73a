"""MeshMetric: which metrics the selected proxies publish and where.

`validation.py` exports `KIND`, the semantic checks beyond its JSON schema (schemas/MeshMetric.json).
Validation only for now: no `envoy.py`.
See its entry in docs/policies.md.
"""
