"""MeshRetry: when and how often a caller retries: TCP connect attempts, HTTP and gRPC retries (`to[]` only).

`validation.py` exports `KIND`, the semantic checks beyond its JSON schema (schemas/MeshRetry.json).
`envoy.py` writes retry policies on outbound routes and connect attempts on TCP proxies; `defaults.py`
holds Kuma's `mesh-retry-all-<mesh>`.
See golden files in tests/policies/meshretry/ and its page docs/policies/meshretry.md.
"""
