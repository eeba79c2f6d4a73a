"""targetRef policies, one package per kind, as in Kuma's pkg/plugins/policies/<policy>/.

`<kind>/validation.py` exports `KIND` (the semantic checks beyond schemas/<Kind>.json),
`<kind>/envoy.py` exports `PLUGIN` (its hooks on the Envoy resources being generated) for the
kinds that change Envoy resources, and `<kind>/defaults.py` builds the policies Kuma creates
for a new mesh. `core/` is the targetRef engine they share. `registry.py` is the one ordered
list of kinds (validation side); `plugins.py` gives their plugins in that order (generation
side); `defaults.py` gathers every kind's default policies. The validation side never imports
the Envoy side, so validating a repository does not load the mesh model or Envoy's protos.
"""
