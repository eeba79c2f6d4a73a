"""MeshRateLimit: local HTTP and TCP rate limits on the selected proxies' inbounds.

`validation.py` exports `KIND`, the semantic checks beyond its JSON schema (schemas/MeshRateLimit.json).
`envoy.py` adds local rate limit filters to inbound listeners. No default policy.
Golden files: tests/policies/meshratelimit/ where they exist; user docs: docs/policies/ and docs/policies.md.
"""
