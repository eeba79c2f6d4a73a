"""MeshRateLimit: local HTTP and TCP rate limits on the selected proxies' inbounds.

`validation.py` exports `KIND`, the semantic checks beyond its JSON schema (schemas/MeshRateLimit.json).
`envoy.py` adds local rate limit filters to inbound listeners. No default policy.
See golden files in tests/policies/meshratelimit/ and its page docs/policies/meshratelimit.md.
"""
