"""MeshProxyPatch: raw modifications of the Envoy resources of the selected proxies.

`validation.py` exports `KIND`, the semantic checks beyond its JSON schema (schemas/MeshProxyPatch.json).
`shape.py` warns when a patch names an outbound listener that the proxy's listener shape does not
build. The patches are not applied to the generated resources yet. No default policy.
See its entry in docs/policies.md.
"""
