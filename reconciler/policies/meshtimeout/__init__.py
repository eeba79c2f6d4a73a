"""MeshTimeout: connection, idle and HTTP timeouts, inbound (`rules[]`, `from[]`) and outbound (`to[]`).

`validation.py` exports `KIND`, the semantic checks beyond its JSON schema (schemas/MeshTimeout.json).
`envoy.py` sets them on clusters, HTTP connection managers, TCP proxies and routes; `defaults.py` holds Kuma's
`mesh-timeout-all-<mesh>` and `mesh-gateways-timeout-all-<mesh>`.
Golden files: tests/policies/meshtimeout/ where they exist; user docs: docs/policies/ and docs/policies.md.
"""
