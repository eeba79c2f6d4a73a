"""MeshHealthCheck: active TCP, HTTP or gRPC health checks of the destinations in `to[]`.

`validation.py` exports `KIND`, the semantic checks beyond its JSON schema (schemas/MeshHealthCheck.json).
`envoy.py` adds health checks to outbound clusters. No default policy.
See golden files in tests/policies/meshhealthcheck/ and its page docs/policies/meshhealthcheck.md.
"""
