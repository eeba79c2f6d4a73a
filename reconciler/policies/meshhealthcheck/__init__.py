"""MeshHealthCheck: active TCP, HTTP or gRPC health checks of the destinations in `to[]`.

`validation.py` exports `KIND`, the semantic checks beyond its JSON schema (schemas/MeshHealthCheck.json).
`envoy.py` adds health checks to outbound clusters. No default policy.
Golden files: tests/policies/meshhealthcheck/ where they exist; user docs: docs/policies/ and docs/policies.md.
"""
