"""MeshMetric: which metrics the selected proxies publish and where.

`validation.py` exports `KIND`, the semantic checks beyond its JSON schema (schemas/MeshMetric.json).
Validation only for now: no `envoy.py`.
Golden files: tests/policies/meshmetric/ where they exist; user docs: docs/policies/ and docs/policies.md.
"""
