"""MeshTrafficPermission: which clients may reach the proxies it selects (`from[]` with actions, or `rules[]` matching SPIFFE IDs and SNIs).

`validation.py` exports `KIND`, the semantic checks beyond its JSON schema (schemas/MeshTrafficPermission.json).
`envoy.py` turns the per-client conf into RBAC filters on inbound listeners. No default policy.
Golden files: tests/policies/meshtrafficpermission/ where they exist; user docs: docs/policies/ and docs/policies.md.
"""
