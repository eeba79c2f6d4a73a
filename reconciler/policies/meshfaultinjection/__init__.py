"""MeshFaultInjection: HTTP aborts, delays and bandwidth limits injected on inbound traffic.

`validation.py` exports `KIND`, the semantic checks beyond its JSON schema (schemas/MeshFaultInjection.json).
`envoy.py` adds fault filters before the router of inbound listeners. No default policy.
See golden files in tests/policies/meshfaultinjection/ and its page docs/policies/meshfaultinjection.md.
"""
