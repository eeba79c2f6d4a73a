"""MeshPassthrough: which traffic to destinations outside the mesh sidecars let through.

`validation.py` exports `KIND`, the semantic checks beyond its JSON schema (schemas/MeshPassthrough.json).
Validation only for now: no `envoy.py`.
Golden files: tests/policies/meshpassthrough/ where they exist; user docs: docs/policies/ and docs/policies.md.
"""
