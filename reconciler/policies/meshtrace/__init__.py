"""MeshTrace: distributed tracing: one backend, sampling rates and span tags.

`validation.py` exports `KIND`, the semantic checks beyond its JSON schema (schemas/MeshTrace.json).
Validation only for now: no `envoy.py`.
See its entry in docs/policies.md.
"""
