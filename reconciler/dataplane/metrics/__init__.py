"""The dataplane's metrics pieces: collecting Prometheus stats and handing them to the MeshMetric backends."""
