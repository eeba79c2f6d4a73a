"""MeshPassthrough: which traffic to destinations outside the mesh sidecars let through.

`validation.py` exports `KIND`, the semantic checks beyond its JSON schema (schemas/MeshPassthrough.json);
`envoy.py` exports `PLUGIN` and `configure_passthrough`, its effect on the transparent proxy's
outbound passthrough listeners (order.py: Kuma's order of their filter chains).
See docs/policies/meshpassthrough.md.
"""
