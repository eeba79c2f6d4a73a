"""Running Envoy as a dataplane proxy, like kuma-dp: bootstrap config and a launcher."""
