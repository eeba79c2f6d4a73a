"""MeshTrafficPermission: which clients may reach the proxies it selects (`from[]` with actions, or `rules[]` matching SPIFFE IDs and SNIs).

`validation.py` exports `KIND`, the semantic checks beyond its JSON schema (schemas/MeshTrafficPermission.json).
`envoy.py` turns the per-client conf into RBAC filters on inbound listeners. No default policy.
See golden files in tests/policies/meshtrafficpermission/ and its entry in docs/policies.md.
"""
