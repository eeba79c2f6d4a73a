"""MeshLoadBalancingStrategy: the load balancer, hash policies and locality awareness (`to[]` only).

`validation.py` exports `KIND`, the semantic checks beyond its JSON schema (schemas/MeshLoadBalancingStrategy.json).
`envoy.py` sets the LB policy on clusters, priorities on endpoints and hash policies on routes. No default policy.
See golden files in tests/policies/meshloadbalancingstrategy/ and its page docs/policies/meshloadbalancingstrategy.md.
"""
