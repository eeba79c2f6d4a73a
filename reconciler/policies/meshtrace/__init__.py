"""MeshTrace: distributed tracing: one backend, sampling rates and span tags.

`validation.py` exports `KIND`, the semantic checks beyond its JSON schema (schemas/MeshTrace.json).
`envoy.py` exports `PLUGIN`: tracing on every HTTP connection manager (backends.py builds the tracer and its collector cluster).
See its entry in docs/policies.md.
"""
