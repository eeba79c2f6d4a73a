"""MeshFaultInjection: HTTP aborts, delays and bandwidth limits injected on inbound traffic.

`validation.py` exports `KIND`, the semantic checks beyond its JSON schema (schemas/MeshFaultInjection.json).
`envoy.py` adds fault filters before the router of inbound listeners. No default policy.
Golden files: tests/policies/meshfaultinjection/ where they exist; user docs: docs/policies/ and docs/policies.md.
"""
