"""What one proxy gets: its inbounds, outbounds, routes, gateway listeners and the policy confs
matched to each (the targetRef engine of reconciler.policies.core run over reconciler.mesh's model).

The generators in reconciler.xds.generate turn a view into Envoy resources; nothing here knows
Envoy's messages.
"""
