"""MeshTimeout: connection, idle and HTTP timeouts, inbound (`rules[]`, `from[]`) and outbound (`to[]`).

`validation.py` exports `KIND`, the semantic checks beyond its JSON schema (schemas/MeshTimeout.json).
`envoy.py` sets them on clusters, HTTP connection managers, TCP proxies and routes; `defaults.py` holds Kuma's
`mesh-timeout-all-<mesh>` and `mesh-gateways-timeout-all-<mesh>`.
See golden files in tests/policies/meshtimeout/ and its page docs/policies/meshtimeout.md.
"""
