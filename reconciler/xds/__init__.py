"""Envoy configuration: generation (pure), the per-node cache, and the ADS server."""
