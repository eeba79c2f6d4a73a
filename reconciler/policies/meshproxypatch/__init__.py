"""MeshProxyPatch: raw modifications of the Envoy resources of the selected proxies.

`validation.py` exports `KIND`, the semantic checks beyond its JSON schema (schemas/MeshProxyPatch.json).
`envoy.py` applies the modifications to a proxy's finished resources (the generator calls
`apply_modifications` after every other policy), with `envoyjson.py` for Envoy's YAML/JSON forms,
proto merges and JSON patches. `shape.py` warns when a patch names an outbound listener that the
proxy's listener shape does not build. No default policy. See docs/policies/meshproxypatch.md.
"""
