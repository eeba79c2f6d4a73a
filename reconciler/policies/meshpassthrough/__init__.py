"""MeshPassthrough: which traffic to destinations outside the mesh sidecars let through.

`validation.py` exports `KIND`, the semantic checks beyond its JSON schema (schemas/MeshPassthrough.json).
Validation only for now: no `envoy.py`.
See its entry in docs/policies.md.
"""
