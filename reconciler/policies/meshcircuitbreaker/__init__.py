"""MeshCircuitBreaker: connection limits and outlier detection, inbound and outbound.

`validation.py` exports `KIND`, the semantic checks beyond its JSON schema (schemas/MeshCircuitBreaker.json).
`envoy.py` sets circuit breakers and outlier detection on clusters; `defaults.py` holds Kuma's
`mesh-circuit-breaker-all-<mesh>`.
See golden files in tests/policies/meshcircuitbreaker/ and its page docs/policies/meshcircuitbreaker.md.
"""
