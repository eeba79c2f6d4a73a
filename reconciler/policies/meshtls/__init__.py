"""MeshTLS: the mTLS mode, TLS versions and cipher suites inbound traffic is accepted with.

`validation.py` exports `KIND`, the semantic checks beyond its JSON schema (schemas/MeshTLS.json).
`envoy.py` sets TLS parameters on inbound listeners and, from the mesh-wide conf, on outbound clusters.
No default policy.
See golden files in tests/policies/meshtls/ and its entry in docs/policies.md.
"""
